//! *New VM…*: the initial-placement dialog. The operator names the VM, sizes it and picks
//! the protection group it is meant for; every protected-site datastore is ranked by the
//! impact rules ([`crate::engine::rank_initial_placement`]), the safest one the VM may go to
//! preselected. A choice that loses the intended protection needs "Are you sure?", as a
//! migration does, and the engine logs the override. With a workspace open the engine
//! creates the VM (instance, locations, topology in use); without one the VM is added to
//! the topology shown, for Save to write.

use egui::{RichText, Ui};

use super::Document;
use super::live::Live;
use super::style::{self, glyph};
use crate::dr::Rating;
use crate::engine::{Command, PlacementOption, rank_initial_placement, recommended};
use crate::topology::{SiteRole, Topology, Vm, Workload, id_problem};

/// The window's title (also its accessible name) and the menu entries' text.
pub const TITLE: &str = "New VM";
pub const MENU: &str = "New VM…";
/// The accessible names of the inputs.
pub const NAME: &str = "VM name";
pub const DISK: &str = "Disk size (MiB)";
pub const VCPUS: &str = "vCPUs";
pub const MEMORY: &str = "Memory (GiB)";
pub const HOST: &str = "Host";
pub const PG: &str = "Protection group";
pub const WRITES: &str = "Guest writes per second";
pub const READS: &str = "Guest reads per second";
/// The button that adds the VM.
pub const ADD: &str = "Add VM";

const SIZE: egui::Vec2 = egui::vec2(720.0, 560.0);

/// What the dialog asks for when Add is pressed.
#[derive(Debug, Clone, PartialEq)]
pub enum Submit {
    /// A workspace is open: the engine creates the VM.
    Engine(Command),
    /// No workspace: the VM joins the topology shown (and is saved with it). `overridden`:
    /// the rating and fault the operator accepted, for the event log.
    Topology {
        vm: Vm,
        pg: String,
        overridden: Option<String>,
    },
}

#[derive(Default)]
pub struct NewVm {
    pub open: bool,
    pub name: String,
    pub disk_mib: u64,
    pub vcpus: u32,
    pub memory_gib: u32,
    pub host: String,
    pub pg: String,
    pub write_iops: u32,
    pub read_iops: u32,
    /// The datastore picked; `None` follows the recommendation.
    pub chosen: Option<String>,
    /// The operator's "Are you sure?" for a placement rated above `none`.
    pub confirmed: bool,
    /// The last ranking and what it was computed from.
    ranked: Option<(RankKey, Ranked)>,
    /// Without a workspace: the last VM checked against the whole topology (with the
    /// topology's VM count), and the verdict; the check clones the topology, so it runs
    /// when the inputs change, not every frame.
    validated: Option<((Vm, usize), Result<(), String>)>,
}

/// A ranking, shared between the dialog's state and the frame drawing it.
type Ranked = std::sync::Arc<Result<Vec<PlacementOption>, String>>;

/// The uuid a VM has in the dialog until Add gives it its own.
const UNSET_UUID: &str = "00000000-0000-4000-8000-000000000000";

impl Submit {
    /// The same request for a VM with a new random uuid: made once, when Add is pressed.
    fn with_new_uuid(mut self) -> Submit {
        let uuid = uuid::Uuid::new_v4().hyphenated().to_string();
        match &mut self {
            Submit::Engine(Command::AddVm { vm, .. }) | Submit::Topology { vm, .. } => {
                vm.uuid = uuid;
            }
            Submit::Engine(_) => {}
        }
        self
    }
}

#[derive(Clone, PartialEq)]
struct RankKey {
    pg: String,
    disk_mib: u64,
    vms: usize,
    free: std::collections::BTreeMap<String, u64>,
    unavailable: std::collections::BTreeMap<String, String>,
}

impl NewVm {
    /// Opens the dialog with defaults taken from `t`: a free name, the size of its VMs'
    /// disks and CPUs (their median), the first protected-site host and protection group.
    pub fn open_for(&mut self, t: &Topology) {
        let median = |mut v: Vec<u64>, or: u64| {
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(or)
        };
        let name = (1..)
            .map(|n| format!("new-vm-{n:02}"))
            .find(|n| t.vm(n).is_none())
            .expect("an unused name");
        *self = NewVm {
            open: true,
            name,
            disk_mib: median(t.vms.iter().map(|v| v.disk_mib).collect(), 64),
            vcpus: median(t.vms.iter().map(|v| u64::from(v.vcpus)).collect(), 2) as u32,
            memory_gib: median(t.vms.iter().map(|v| u64::from(v.memory_gib)).collect(), 8) as u32,
            host: t
                .hosts
                .iter()
                .find(|h| t.site_role(&h.site) == Some(SiteRole::Protected))
                .map(|h| h.id.clone())
                .unwrap_or_default(),
            pg: t
                .protection_groups
                .first()
                .map(|p| p.id.clone())
                .unwrap_or_default(),
            write_iops: 100,
            read_iops: 100,
            ..NewVm::default()
        };
    }

    /// The ranking for the current inputs, on the engine's free space when a workspace is
    /// open (recomputed only when an input or the free space changed).
    fn ranking(&mut self, doc: &Document, live: &Live) -> Ranked {
        let t = &doc.topology;
        let open = live.is_open() && !live.free_mib.is_empty();
        // Without a workspace the ranking takes each datastore's free space from the
        // topology itself (capacity less the disks placed there).
        let no_free = std::collections::BTreeMap::new();
        let no_unavailable = std::collections::BTreeMap::new();
        let free = if open { &live.free_mib } else { &no_free };
        let unavailable = live
            .snapshot
            .as_ref()
            .filter(|_| open)
            .map_or(&no_unavailable, |s| &s.unplaceable);
        if let Some((k, r)) = &self.ranked
            && k.pg == self.pg
            && k.disk_mib == self.disk_mib
            && k.vms == t.vms.len()
            && k.free == *free
            && k.unavailable == *unavailable
        {
            return r.clone();
        }
        let r = std::sync::Arc::new(
            rank_initial_placement(t, &self.pg, self.disk_mib, free, unavailable)
                .map_err(|e| e.to_string()),
        );
        let key = RankKey {
            pg: self.pg.clone(),
            disk_mib: self.disk_mib,
            vms: t.vms.len(),
            free: free.clone(),
            unavailable: unavailable.clone(),
        };
        self.ranked = Some((key, r.clone()));
        r
    }

    /// The VM the inputs describe, placed on `datastore`.
    fn vm(&self, datastore: &str) -> Vm {
        Vm {
            id: self.name.trim().to_string(),
            uuid: UNSET_UUID.to_string(),
            host: self.host.clone(),
            datastore: datastore.to_string(),
            disk_mib: self.disk_mib,
            vcpus: self.vcpus,
            memory_gib: self.memory_gib,
            priority: 3,
            workload: (self.write_iops > 0 || self.read_iops > 0).then_some(Workload {
                write_iops: self.write_iops,
                read_iops: self.read_iops,
            }),
        }
    }

    /// What Add sends now, or why it cannot.
    fn submit_state(
        &mut self,
        doc: &Document,
        live: &Live,
        pick: Option<&PlacementOption>,
    ) -> Result<Submit, String> {
        let t = &doc.topology;
        let name = self.name.trim();
        if let Some(p) = id_problem(name) {
            return Err(format!("VM name {name:?}: {p}."));
        }
        if t.vm(name).is_some() {
            return Err(format!("The topology already has a VM named {name}."));
        }
        if t.host(&self.host).is_none() {
            return Err("Pick a host.".into());
        }
        let Some(o) = pick else {
            return Err("No datastore can take it: see each one's reason.".into());
        };
        if !o.placeable {
            return Err(format!("{} cannot take it: {}.", o.datastore, o.reason));
        }
        let needs_override = o.rating > Rating::None;
        if needs_override && !self.confirmed {
            return Err(format!(
                "Tick \"Are you sure?\" to place it on {} (rated {}).",
                o.datastore, o.rating
            ));
        }
        let vm = self.vm(&o.datastore);
        if live.is_open() {
            return Ok(Submit::Engine(Command::AddVm {
                vm,
                protection_group: self.pg.clone(),
                confirm: needs_override,
            }));
        }
        let key = (vm.clone(), t.vms.len());
        let verdict = match &self.validated {
            Some((k, v)) if *k == key => v.clone(),
            _ => {
                let mut with = t.clone();
                with.vms.push(vm.clone());
                let v = with.validate().map_err(|v| {
                    v.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                });
                self.validated = Some((key, v.clone()));
                v
            }
        };
        match verdict {
            Ok(()) => Ok(Submit::Topology {
                vm,
                pg: self.pg.clone(),
                overridden: needs_override.then(|| {
                    format!(
                        "{} ({})",
                        o.rating,
                        o.fault.map(|f| f.as_str()).unwrap_or("none")
                    )
                }),
            }),
            Err(why) => Err(why),
        }
    }

    /// Draws the dialog; returns what to do when Add was pressed.
    pub fn show(&mut self, ctx: &egui::Context, doc: &Document, live: &Live) -> Option<Submit> {
        if !self.open {
            return None;
        }
        let mut area = ctx.content_rect();
        area.min.y = area.min.y.max(super::demo::content_top(ctx));
        let size = SIZE
            .min(area.size() - egui::vec2(32.0, 72.0))
            .max(egui::vec2(300.0, 220.0));
        let ranking = self.ranking(doc, live);
        let options: &[PlacementOption] = ranking.as_ref().as_deref().unwrap_or(&[]);
        if self
            .chosen
            .as_ref()
            .is_some_and(|c| !options.iter().any(|o| &o.datastore == c && o.placeable))
        {
            self.chosen = None;
            self.confirmed = false;
        }
        let pick = match &self.chosen {
            Some(c) => options.iter().find(|o| &o.datastore == c),
            None => recommended(options),
        }
        .cloned();
        let mut open = true;
        let mut submit = None;
        egui::Window::new(TITLE)
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .fixed_size(size)
            .pivot(egui::Align2::CENTER_TOP)
            .default_pos(egui::pos2(area.center().x, area.top() + 16.0))
            .constrain_to(area)
            .show(ctx, |ui| {
                self.inputs(ui, &doc.topology);
                ui.separator();
                egui::Panel::bottom("new-vm-footer")
                    .show_separator_line(true)
                    .show(ui, |ui| submit = self.footer(ui, doc, live, pick.as_ref()));
                egui::ScrollArea::vertical()
                    .id_salt("new-vm-datastores")
                    .auto_shrink([false, false])
                    .scroll([true, true])
                    .show(ui, |ui| match ranking.as_ref() {
                        Ok(options) => self.table(ui, options, pick.as_ref(), live),
                        Err(e) => {
                            ui.colored_label(ui.visuals().error_fg_color, e);
                        }
                    });
            });
        if !open || submit.is_some() {
            self.open = false;
        }
        submit
    }

    fn inputs(&mut self, ui: &mut Ui, t: &Topology) {
        egui::Grid::new("new-vm-inputs")
            .num_columns(4)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                let label = ui.label(NAME);
                ui.add(egui::TextEdit::singleline(&mut self.name).desired_width(160.0))
                    .labelled_by(label.id);
                let label = ui.label(DISK);
                ui.add(egui::DragValue::new(&mut self.disk_mib).range(1..=1 << 30))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label(VCPUS);
                ui.add(egui::DragValue::new(&mut self.vcpus).range(1..=256))
                    .labelled_by(label.id);
                let label = ui.label(MEMORY);
                ui.add(egui::DragValue::new(&mut self.memory_gib).range(1..=4096))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label(HOST);
                let hosts = t
                    .hosts
                    .iter()
                    .filter(|h| t.site_role(&h.site) == Some(SiteRole::Protected));
                egui::ComboBox::from_id_salt("new-vm-host")
                    .selected_text(&self.host)
                    .show_ui(ui, |ui| {
                        for h in hosts {
                            ui.selectable_value(&mut self.host, h.id.clone(), &h.id);
                        }
                    })
                    .response
                    .labelled_by(label.id);
                let label = ui.label(PG);
                let before = self.pg.clone();
                egui::ComboBox::from_id_salt("new-vm-pg")
                    .selected_text(&self.pg)
                    .show_ui(ui, |ui| {
                        for p in &t.protection_groups {
                            ui.selectable_value(
                                &mut self.pg,
                                p.id.clone(),
                                format!("{} ({})", p.id, p.name),
                            );
                        }
                    })
                    .response
                    .labelled_by(label.id);
                if self.pg != before {
                    self.chosen = None;
                    self.confirmed = false;
                }
                ui.end_row();
                let label = ui.label(WRITES);
                ui.add(egui::DragValue::new(&mut self.write_iops).range(0..=100_000))
                    .labelled_by(label.id);
                let label = ui.label(READS);
                ui.add(egui::DragValue::new(&mut self.read_iops).range(0..=100_000))
                    .labelled_by(label.id);
                ui.end_row();
            });
    }

    fn table(
        &mut self,
        ui: &mut Ui,
        options: &[PlacementOption],
        pick: Option<&PlacementOption>,
        live: &Live,
    ) {
        ui.label(
            RichText::new(format!(
                "Where can it go? Every protected-site datastore for a VM meant for {}, safest first{}.",
                self.pg,
                if live.is_open() { "" } else { " (free space from the topology: no workspace is open)" }
            ))
            .weak(),
        );
        ui.add_space(4.0);
        egui::Grid::new("new-vm-datastores")
            .num_columns(5)
            .striped(true)
            .spacing([14.0, 6.0])
            .show(ui, |ui| {
                ui.strong("Datastore");
                ui.strong("Rating");
                ui.strong("What the VM gets");
                ui.strong("Free after");
                ui.strong("Used after");
                ui.end_row();
                for o in options {
                    let selected = pick.is_some_and(|p| p.datastore == o.datastore);
                    let row = ui
                        .add_enabled(
                            o.placeable,
                            egui::Button::selectable(
                                selected,
                                format!("{} {}", glyph::DATASTORE, o.datastore),
                            ),
                        )
                        .on_hover_ui(|ui| {
                            ui.set_max_width(420.0);
                            ui.label(&o.explanation);
                        })
                        .on_disabled_hover_text(&o.reason);
                    if row.clicked() && !selected {
                        self.chosen = Some(o.datastore.clone());
                        self.confirmed = false;
                    }
                    ui.label(style::rating_text(ui, o.rating));
                    if o.placeable {
                        ui.label(&o.gets);
                    } else {
                        ui.label(RichText::new(&o.reason).color(ui.visuals().warn_fg_color));
                    }
                    ui.label(o.free_after_mib.map_or("—".to_string(), style::mib_text));
                    ui.label(crate::engine::placement_percent(o.used_after_bp));
                    ui.end_row();
                }
            });
    }

    fn footer(
        &mut self,
        ui: &mut Ui,
        doc: &Document,
        live: &Live,
        pick: Option<&PlacementOption>,
    ) -> Option<Submit> {
        ui.add_space(4.0);
        if let Some(o) = pick.filter(|o| o.rating > Rating::None && o.placeable) {
            super::wizard::are_you_sure(
                ui,
                &mut self.confirmed,
                &format!("Place {} on {}", self.name.trim(), o.datastore),
                (o.rating, o.fault),
            );
            ui.add_space(2.0);
        }
        let state = self.submit_state(doc, live, pick);
        let mut submit = None;
        ui.horizontal(|ui| {
            let text = RichText::new(ADD);
            let text = if state.is_ok() { text.strong() } else { text };
            let button = ui
                .add_enabled(state.is_ok(), egui::Button::new(text))
                .on_disabled_hover_text(state.as_ref().err().cloned().unwrap_or_default());
            match state {
                Ok(s) => {
                    if let Some(o) = pick {
                        ui.label(format!(
                            "on {} {}: {}",
                            glyph::DATASTORE,
                            o.datastore,
                            o.rating
                        ));
                    }
                    if button.clicked() {
                        submit = Some(s.with_new_uuid());
                    }
                }
                Err(why) => {
                    ui.add(
                        egui::Label::new(RichText::new(why).color(ui.visuals().warn_fg_color))
                            .wrap(),
                    );
                }
            }
        });
        ui.add_space(2.0);
        submit
    }
}

impl super::DrApp {
    /// No workspace is open: `vm` joins the topology shown, for Save to write.
    pub(super) fn add_vm_to_document(&mut self, vm: Vm, pg: &str, overridden: Option<String>) {
        let mut t = self.doc.topology.clone();
        let (id, ds) = (vm.id.clone(), vm.datastore.clone());
        t.vms.push(vm);
        if let Err(v) = t.validate() {
            let list: Vec<String> = v.iter().map(|v| v.to_string()).collect();
            self.log
                .error(format!("New VM {id} on {ds}: {}", list.join("; ")));
            return;
        }
        self.log.record(
            super::Kind::Command,
            super::Level::Info,
            format!(
                "Operator: Add VM {id} on {ds} (no workspace is open: it joins the topology shown; Save writes it)"
            ),
            None,
            false,
        );
        if let Some(rated) = overridden {
            self.log.record(
                super::Kind::Override,
                super::Level::Warning,
                format!(
                    "Override: new VM {id} on {ds} (meant for {pg}) confirmed by the operator despite rating {rated}"
                ),
                None,
                false,
            );
        }
        self.doc = Document::at(t, self.doc.source.clone(), self.live.whereabouts.clone());
        self.selection = Some(super::Selection::Vm(id));
    }
}
