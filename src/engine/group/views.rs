//! What the console and scenarios see of group migrations.

use super::*;

/// One VM of a group migration as the console shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupMemberView {
    pub vm: String,
    pub from: String,
    pub to: String,
    pub blocks: u64,
    pub copied_blocks: u64,
    /// Its copy is done (held for the switch, or switched).
    pub copied: bool,
    /// The datastore it runs on now.
    pub on: String,
}

/// What the console shows (a field of the snapshot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupMigrationView {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub rating: String,
    pub phase: GroupPhase,
    /// The phase in words ("copying 2/4", "switched, mirroring back · waiting for a
    /// recovery point at cg-b", ...).
    pub status: String,
    pub members: Vec<GroupMemberView>,
    pub reverse_writes: u64,
    pub started_at: SimTime,
    pub switched_at: Option<SimTime>,
    /// The cut of the destination CG's point that declared success.
    pub point_cut_at: Option<SimTime>,
    pub point_published_at: Option<SimTime>,
    pub sources_deleted_at: Option<SimTime>,
    pub ended_at: Option<SimTime>,
    pub message: String,
}

impl Engine {
    /// The snapshot's view.
    pub(in crate::engine) fn group_migration_views(&self) -> Vec<GroupMigrationView> {
        self.group
            .saved
            .ops
            .iter()
            .map(|op| {
                let members: Vec<GroupMemberView> = op
                    .members
                    .iter()
                    .map(|m| {
                        let i = self.vm_index(&m.vm);
                        let mg = i.and_then(|i| {
                            self.vms[i]
                                .migration
                                .as_ref()
                                .filter(|mg| mg.rec.id == m.migration)
                        });
                        let blocks = i.map_or(0, |i| self.vms[i].blocks);
                        let (copied_blocks, copied) = match (mg, op.switched_at) {
                            (Some(mg), _) => (mg.core.cursor, mg.core.done()),
                            (None, Some(_)) => (blocks, true),
                            (None, None) => (0, false),
                        };
                        GroupMemberView {
                            vm: m.vm.clone(),
                            from: m.from.clone(),
                            to: m.to.clone(),
                            blocks,
                            copied_blocks,
                            copied,
                            on: i.map_or_else(String::new, |i| self.vms[i].datastore.clone()),
                        }
                    })
                    .collect();
                let n = members.iter().filter(|m| m.copied).count();
                let status = match op.phase {
                    GroupPhase::Copying => format!("copying {n}/{}", members.len()),
                    GroupPhase::Switched => format!(
                        "switched, mirroring back · waiting for a recovery point at {}",
                        op.to
                    ),
                    p => p.as_str().to_string(),
                };
                GroupMigrationView {
                    id: op.id,
                    from: op.from.clone(),
                    to: op.to.clone(),
                    rating: op.rating.clone(),
                    phase: op.phase,
                    status,
                    members,
                    reverse_writes: op.reverse_writes,
                    started_at: op.started_at,
                    switched_at: op.switched_at,
                    point_cut_at: op.point.as_ref().map(|p| p.cut_at),
                    point_published_at: op.point.as_ref().map(|p| p.published_at),
                    sources_deleted_at: op.sources_deleted_at,
                    ended_at: op.ended_at,
                    message: op.message.clone(),
                }
            })
            .collect()
    }

    /// `Expect(GroupMigrated(from, to))`: the group migration declared success.
    pub fn expect_group_migrated(&self, from: &str, to: &str) -> (bool, String) {
        let Some(op) = self
            .group
            .saved
            .ops
            .iter()
            .rev()
            .find(|o| o.from == from && o.to == to)
        else {
            return (false, format!("no group migration {from} ▶ {to}"));
        };
        if op.phase != GroupPhase::Succeeded {
            return (
                false,
                format!("group migration {from} ▶ {to} is {}", op.phase.as_str()),
            );
        }
        let dst = cg_datastores(self.topology(), to);
        let off: Vec<String> = op
            .members
            .iter()
            .filter(|m| {
                self.location(&m.vm)
                    .is_none_or(|(ds, _)| !dst.contains(&ds))
            })
            .map(|m| m.vm.clone())
            .collect();
        if !off.is_empty() {
            return (false, format!("not on {to}: {}", off.join(", ")));
        }
        let cut = op.point.as_ref().map_or(0, |p| p.cut_at);
        (
            true,
            format!(
                "{} VMs on {to}; {to} published a point cut at {} (switch at {})",
                op.members.len(),
                format_time(cut),
                format_time(op.switched_at.unwrap_or(0))
            ),
        )
    }
}
