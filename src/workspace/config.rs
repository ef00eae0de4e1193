//! What a VM instance's vm.ron holds: its config and migration marks (SPEC §4.1).

use super::*;

/// The migration marks of SPEC §4.1 / §5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationMarks {
    pub id: String,
    /// This instance is the source of a storage migration.
    pub source: bool,
    /// This instance is the destination of a storage migration.
    pub target: bool,
    /// The copy finished successfully.
    pub completed: bool,
}

/// The VM config file `vm.ron` (SPEC §4.1). Readers accept extra fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    pub uuid: String,
    pub name: String,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// Disk image file names, relative to the instance directory.
    pub disks: Vec<String>,
    #[serde(default)]
    pub migration: Option<MigrationMarks>,
}

impl VmConfig {
    /// The config of a fresh instance of `vm`: one disk `disk0.img`, no migration marks.
    pub fn for_vm(vm: &crate::topology::Vm) -> VmConfig {
        VmConfig {
            uuid: vm.uuid.clone(),
            name: vm.id.clone(),
            vcpus: vm.vcpus,
            memory_gib: vm.memory_gib,
            disks: vec![FIRST_DISK.to_string()],
            migration: None,
        }
    }

    /// Pretty RON in the contract's shape: `VmConfig(uuid: ..., migration: None)`.
    pub fn to_ron_string(&self) -> String {
        let config = ron::ser::PrettyConfig::new()
            .struct_names(true)
            .indentor("    ".to_string());
        match ron::ser::to_string_pretty(self, config) {
            Ok(s) => s + "\n",
            // Strings, numbers, booleans and options always serialize; keep a fallback
            // anyway rather than panic.
            Err(_) => format!("{self:?}\n"),
        }
    }

    /// Parses `vm.ron` text; `file` names the source in errors. Checks the uuid and the
    /// disk file names.
    pub fn from_ron_str(text: &str, file: &str) -> Result<VmConfig, WorkspaceError> {
        let config: VmConfig = crate::fsutil::parse_ron(text, file)?;
        config.check(file)?;
        Ok(config)
    }

    /// The rules a config must keep so that it can be used safely: a standard uuid (disk
    /// stamps hold it) and disk names that are plain file names inside the instance directory.
    pub(super) fn check(&self, file: &str) -> Result<(), WorkspaceError> {
        let invalid = |message: String| WorkspaceError::InvalidConfig {
            file: file.to_string(),
            message,
        };
        if uuid::Uuid::parse_str(&self.uuid).is_err() || self.uuid.len() != 36 {
            return Err(invalid(format!(
                "uuid {:?} is not a standard UUID (8-4-4-4-12 hex digits)",
                self.uuid
            )));
        }
        for (i, disk) in self.disks.iter().enumerate() {
            if let Some(p) = id_problem(disk) {
                return Err(invalid(format!(
                    "disk file name {disk:?} is not a plain file name: {p}"
                )));
            }
            if disk == VM_CONFIG_FILE {
                return Err(invalid(format!(
                    "disk file name {disk:?} is the config file's own name"
                )));
            }
            if self.disks[..i].contains(disk) {
                return Err(invalid(format!("disk file name {disk:?} is listed twice")));
            }
        }
        Ok(())
    }
}
