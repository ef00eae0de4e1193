//! Reading, writing and naming topologies: RON text and files.

use super::*;

impl Topology {
    /// Parses RON text; `file` names the source in errors. Validates.
    pub fn from_ron_str(text: &str, file: &str) -> Result<Topology, TopologyError> {
        let topo: Topology = crate::fsutil::parse_ron(text, file)?;
        topo.validate().map_err(|mut v| {
            let first = v.remove(0);
            TopologyError::Invalid {
                file: file.to_string(),
                first,
                rest: v,
            }
        })?;
        Ok(topo)
    }

    /// Reads, parses and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            file: file.clone(),
            source,
        })?;
        Topology::from_ron_str(&text, &file)
    }

    /// The compiled-in demo topology.
    pub fn builtin_default() -> Topology {
        Topology::from_ron_str(DEFAULT_TOPOLOGY_RON, DEFAULT_TOPOLOGY_SOURCE)
            .expect("the built-in topology is checked by the test suite")
    }

    /// Pretty RON in the contract's shape (struct names included).
    pub fn to_ron_string(&self) -> String {
        let config = ron::ser::PrettyConfig::new()
            .struct_names(true)
            .indentor("    ".to_string());
        // Serializing plain structs, strings and numbers cannot fail.
        ron::ser::to_string_pretty(self, config).expect("topology serializes") + "\n"
    }

    /// Writes the topology atomically: a temp file beside it, fsync, rename, fsync the directory.
    pub fn save(&self, path: &Path) -> Result<(), TopologyError> {
        crate::fsutil::write_atomic(path, self.to_ron_string().as_bytes()).map_err(|source| {
            TopologyError::Write {
                file: path.display().to_string(),
                source,
            }
        })
    }
}

/// Where a topology came from, for titles and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologySource {
    BuiltIn,
    File(PathBuf),
}

impl fmt::Display for TopologySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologySource::BuiltIn => f.write_str(DEFAULT_TOPOLOGY_SOURCE),
            TopologySource::File(p) => write!(f, "{}", p.display()),
        }
    }
}
