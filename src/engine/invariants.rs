//! Invariants the engine keeps, checked from inside (TigerBeetle's habit): after every
//! command and every `advance` in debug builds, so a state machine that breaks one fails
//! at the step that broke it, not at a verifier run long after. Only what is cheap to
//! check in memory is checked here; the on-disk truth (images against the journal) is the
//! verifier's ([`Engine::verify_vm`]).

use super::*;

/// A broken invariant: the rule, and what broke it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("engine invariant {rule:?} broken: {detail}")]
pub struct Broken {
    pub rule: &'static str,
    pub detail: String,
}

fn broken(rule: &'static str, detail: String) -> Result<(), Broken> {
    Err(Broken { rule, detail })
}

impl Engine {
    /// Checks the engine's invariants; the first broken one is the error.
    pub fn check_invariants(&self) -> Result<(), Broken> {
        self.check_id_maps()?;
        self.check_vms()?;
        self.check_groups()?;
        self.check_across()
    }

    /// Panics on a broken invariant in debug builds; nothing in release builds.
    pub(super) fn debug_check_invariants(&self) {
        #[cfg(debug_assertions)]
        if let Err(b) = self.check_invariants() {
            panic!("{b}");
        }
    }

    /// Rule "id maps agree with vectors": every VM's id maps to its own index, and only those.
    fn check_id_maps(&self) -> Result<(), Broken> {
        const RULE: &str = "id maps agree with vectors";
        if self.vm_ix.len() != self.vms.len() {
            let detail = format!("{} VM ids mapped, {} VMs", self.vm_ix.len(), self.vms.len());
            return broken(RULE, detail);
        }
        for (i, v) in self.vms.iter().enumerate() {
            if self.vm_ix.get(&v.id) != Some(&VmIx(i)) {
                return broken(RULE, format!("VM {:?} at {i} maps elsewhere", v.id));
            }
        }
        Ok(())
    }

    /// Rules "VM has a complete instance" and "migration agrees with its record".
    fn check_vms(&self) -> Result<(), Broken> {
        for v in &self.vms {
            if v.instance.is_empty() || v.last_seq.len() as u64 != v.blocks {
                let detail = format!(
                    "VM {:?}: instance {:?}, {} blocks, oracle of {}",
                    v.id,
                    v.instance,
                    v.blocks,
                    v.last_seq.len()
                );
                return broken("VM has a complete instance", detail);
            }
            let Some(m) = &v.migration else { continue };
            if m.rec.vm != v.id || m.core.blocks != v.blocks || m.core.cursor > m.core.blocks {
                let detail = format!(
                    "VM {:?}: migration {} of {:?}, {} blocks (cursor {}) for a VM of {}",
                    v.id, m.rec.id, m.rec.vm, m.core.blocks, m.core.cursor, v.blocks
                );
                return broken("migration agrees with its record", detail);
            }
        }
        Ok(())
    }

    /// Rule "published point consistent": a group's published point is its own, of a cycle
    /// it ran, cut before it was published, and cut at a write that was issued.
    fn check_groups(&self) -> Result<(), Broken> {
        for g in &self.groups {
            let Some(p) = &g.published else { continue };
            if p.group != g.spec.key
                || p.cycle > g.saved.cycles
                || p.cut_at > p.published_at
                || p.cut_seq >= self.next_seq
            {
                let detail = format!(
                    "group {:?} ({} cycles, next seq {}): {p:?}",
                    g.spec.key, g.saved.cycles, self.next_seq
                );
                return broken("published point consistent", detail);
            }
        }
        Ok(())
    }
}
