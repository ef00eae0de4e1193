//! What the console remembers between runs: one serde [`Persisted`] struct, saved by
//! eframe (`App::save`, under [`STORAGE_KEY`]) and read back in [`super::run`]. Window size
//! and position are eframe's own (`persist_window`).
//!
//! Everything here works without eframe's storage, so tests drive it directly:
//! [`DrApp::persisted`] takes the state out of an app, [`Startup::with_persisted`] and
//! [`DrApp::restore`] put it into a new one, and [`choose_startup`] is the rule that
//! picks the topology and workspace to open.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::log::LogFilter;
use super::{DrApp, MainTab, SideTab, Startup, WorkspaceChoice};
use crate::topology::{Topology, TopologySource};

/// The key of [`Persisted`] in eframe's storage.
pub const STORAGE_KEY: &str = "drconsole";

/// Recent files kept (most recent first).
pub const RECENT_MAX: usize = 8;

/// The theme the operator chose in the View menu.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThemeChoice {
    /// Follow the system.
    #[default]
    System,
    Light,
    Dark,
}

impl From<egui::ThemePreference> for ThemeChoice {
    fn from(p: egui::ThemePreference) -> Self {
        match p {
            egui::ThemePreference::System => ThemeChoice::System,
            egui::ThemePreference::Light => ThemeChoice::Light,
            egui::ThemePreference::Dark => ThemeChoice::Dark,
        }
    }
}

impl From<ThemeChoice> for egui::ThemePreference {
    fn from(t: ThemeChoice) -> Self {
        match t {
            ThemeChoice::System => egui::ThemePreference::System,
            ThemeChoice::Light => egui::ThemePreference::Light,
            ThemeChoice::Dark => egui::ThemePreference::Dark,
        }
    }
}

/// The console's settings and where it was. Fields missing from an older save take their
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub theme: ThemeChoice,
    /// The event log panel is open.
    pub show_log: bool,
    /// The right-hand panel (migrations and replication) is open.
    pub show_side_panel: bool,
    pub main_tab: MainTab,
    pub side_tab: SideTab,
    /// The topology file last open; `None`: the built-in demo.
    pub last_topology: Option<PathBuf>,
    /// The workspace it ran in.
    pub workspace: WorkspaceChoice,
    /// Topology files opened or saved, most recent first, at most [`RECENT_MAX`].
    pub recent: Vec<PathBuf>,
    pub log_filter: LogFilter,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted {
            theme: ThemeChoice::System,
            show_log: true,
            show_side_panel: true,
            main_tab: MainTab::Details,
            side_tab: SideTab::Migrations,
            last_topology: None,
            workspace: WorkspaceChoice::Default,
            recent: Vec::new(),
            log_filter: LogFilter::default(),
        }
    }
}

/// `path` made absolute against the current directory (no file is touched), so a path
/// given relative on the command line still names the same file next time.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The recent topology files, most recent first, each once, and which of them were not
/// found when last looked for (off the UI thread, see [`missing_files`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentFiles {
    paths: Vec<PathBuf>,
    missing: Vec<PathBuf>,
}

impl RecentFiles {
    /// The list as saved: duplicates dropped (the first kept), at most [`RECENT_MAX`].
    pub fn from_paths(paths: &[PathBuf]) -> RecentFiles {
        let mut r = RecentFiles::default();
        for p in paths.iter().rev() {
            r.add(p);
        }
        r
    }

    /// `path` becomes the most recent.
    pub fn add(&mut self, path: &Path) {
        let path = absolute(path);
        self.paths.retain(|p| *p != path);
        self.missing.retain(|p| *p != path);
        self.paths.insert(0, path);
        self.paths.truncate(RECENT_MAX);
    }

    pub fn remove(&mut self, path: &Path) {
        self.paths.retain(|p| p != path);
        self.missing.retain(|p| p != path);
    }

    pub fn clear(&mut self) {
        self.paths.clear();
        self.missing.clear();
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Was `path` missing when last looked for?
    pub fn is_missing(&self, path: &Path) -> bool {
        self.missing.iter().any(|p| p == path)
    }

    /// What [`missing_files`] found.
    pub fn set_missing(&mut self, missing: Vec<PathBuf>) {
        self.missing = missing;
    }
}

/// Which of `paths` are not files now. Touches the file system: call it off the UI thread.
pub fn missing_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths.iter().filter(|p| !p.is_file()).cloned().collect()
}

/// The topology and workspace to start with.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupChoice {
    /// The file to open; `None`: the built-in demo.
    pub topology: Option<PathBuf>,
    pub workspace: WorkspaceChoice,
    /// The topology is the last one open, not one asked for on the command line.
    pub restored: bool,
}

/// The rule: an explicit `--topology` wins (in `--workspace` if given, else its default
/// workspace); without it the last topology and its workspace come back (an explicit
/// `--workspace` still wins); with nothing saved, the built-in demo in its default
/// workspace.
pub fn choose_startup(
    topology: Option<&Path>,
    workspace: Option<&Path>,
    persisted: Option<&Persisted>,
) -> StartupChoice {
    let explicit_ws = workspace.map(|d| WorkspaceChoice::Dir(d.to_path_buf()));
    match (topology, persisted) {
        (Some(t), _) => StartupChoice {
            topology: Some(t.to_path_buf()),
            workspace: explicit_ws.unwrap_or(WorkspaceChoice::Default),
            restored: false,
        },
        (None, Some(p)) => StartupChoice {
            topology: p.last_topology.clone(),
            workspace: explicit_ws.unwrap_or_else(|| p.workspace.clone()),
            restored: true,
        },
        (None, None) => StartupChoice {
            topology: None,
            workspace: explicit_ws.unwrap_or(WorkspaceChoice::Default),
            restored: false,
        },
    }
}

impl Startup {
    /// The command line's `--topology` and `--workspace` with what was saved last time
    /// ([`choose_startup`]). A last topology that no longer loads gives the built-in demo
    /// in its default workspace and an error naming the file; a bad explicit one, the demo
    /// and the error as [`Startup::from_path`] gives them.
    pub fn with_persisted(
        topology: Option<&Path>,
        workspace: Option<PathBuf>,
        persisted: Option<&Persisted>,
    ) -> Startup {
        let choice = choose_startup(topology, workspace.as_deref(), persisted);
        let Some(path) = choice.topology.as_deref() else {
            return Startup {
                workspace: choice.workspace,
                ..Startup::from_path(None)
            };
        };
        match Topology::load(path) {
            Ok(t) => Startup {
                topology: t,
                source: TopologySource::File(path.to_path_buf()),
                error: None,
                workspace: choice.workspace,
            },
            Err(e) if choice.restored => Startup {
                error: Some(format!(
                    "The last topology could not be reopened: {e}; opened the built-in demo instead"
                )),
                workspace: workspace.map_or(WorkspaceChoice::Default, WorkspaceChoice::Dir),
                ..Startup::from_path(None)
            },
            Err(e) => Startup {
                error: Some(format!("{e}; opened the built-in demo instead")),
                workspace: choice.workspace,
                ..Startup::from_path(None)
            },
        }
    }
}

impl DrApp {
    /// What [`eframe::App::save`] stores.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            theme: self.ctx.options(|o| o.theme_preference).into(),
            show_log: self.show_log,
            show_side_panel: self.show_migrations,
            main_tab: self.main_tab,
            side_tab: self.side_tab,
            last_topology: match &self.doc.source {
                TopologySource::File(p) => Some(absolute(p)),
                TopologySource::BuiltIn => None,
            },
            workspace: self.workspace.clone(),
            recent: self.recent.paths().to_vec(),
            log_filter: self.log.filter.clone(),
        }
    }

    /// Takes back the settings of `p` (the topology and workspace come with the
    /// [`Startup`], see [`Startup::with_persisted`]).
    pub fn restore(&mut self, p: &Persisted) {
        self.ctx.set_theme(p.theme);
        self.show_log = p.show_log;
        self.show_migrations = p.show_side_panel;
        self.main_tab = p.main_tab;
        self.side_tab = p.side_tab;
        self.log.filter = p.log_filter.clone();
        let opened = self.recent.paths().to_vec();
        self.recent = RecentFiles::from_paths(&p.recent);
        // The file this run started with stays the most recent.
        for path in opened.iter().rev() {
            self.recent.add(path);
        }
        self.check_recent_files();
    }

    /// The recent topology files.
    pub fn recent_files(&self) -> &RecentFiles {
        &self.recent
    }

    /// Notes `path` as the most recent file, and looks again for missing ones.
    pub(super) fn add_recent(&mut self, path: &Path) {
        self.recent.add(path);
        self.check_recent_files();
    }

    /// Drops `path` from the recent files.
    pub fn remove_recent(&mut self, path: &Path) {
        self.recent.remove(path);
    }

    /// The File → Open Recent submenu: each file (greyed with a tooltip when it was not
    /// found), a button to drop it, and one to clear the list.
    pub(super) fn recent_menu(&mut self, ui: &mut egui::Ui) {
        ui.add_enabled_ui(!self.recent.paths().is_empty(), |ui| {
            ui.menu_button("Open Recent", |ui| {
                let mut open = None;
                let mut remove = None;
                for path in self.recent.paths() {
                    ui.horizontal(|ui| {
                        let name = path.display().to_string();
                        let missing = self.recent.is_missing(path);
                        let text = if missing {
                            egui::RichText::new(&name).weak()
                        } else {
                            egui::RichText::new(&name)
                        };
                        let hint = if missing {
                            format!("{name} was not found. Click to try again, or ✖ to remove it from the list.")
                        } else {
                            format!("Open {name}")
                        };
                        if ui.button(text).on_hover_text(hint).clicked() {
                            open = Some(path.clone());
                        }
                        if ui
                            .small_button("✖")
                            .on_hover_text("Remove from the recent files")
                            .clicked()
                        {
                            remove = Some(path.clone());
                        }
                    });
                }
                ui.separator();
                if ui.button("Clear recent files").clicked() {
                    self.recent.clear();
                }
                if let Some(p) = remove {
                    self.recent.remove(&p);
                }
                if let Some(p) = open {
                    ui.close();
                    self.open_path(p);
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn saved(last: Option<&str>, workspace: WorkspaceChoice) -> Persisted {
        Persisted {
            last_topology: last.map(p),
            workspace,
            ..Persisted::default()
        }
    }

    #[test]
    fn an_explicit_topology_wins() {
        let s = saved(Some("/a.ron"), WorkspaceChoice::Dir(p("/ws-a")));
        let c = choose_startup(Some(Path::new("/b.ron")), None, Some(&s));
        assert_eq!(c.topology, Some(p("/b.ron")));
        assert_eq!(c.workspace, WorkspaceChoice::Default);
        assert!(!c.restored);
        let c = choose_startup(
            Some(Path::new("/b.ron")),
            Some(Path::new("/ws-b")),
            Some(&s),
        );
        assert_eq!(c.workspace, WorkspaceChoice::Dir(p("/ws-b")));
    }

    #[test]
    fn without_arguments_the_last_topology_and_workspace_come_back() {
        let s = saved(Some("/a.ron"), WorkspaceChoice::Dir(p("/ws-a")));
        let c = choose_startup(None, None, Some(&s));
        assert_eq!(c.topology, Some(p("/a.ron")));
        assert_eq!(c.workspace, WorkspaceChoice::Dir(p("/ws-a")));
        assert!(c.restored);
        // An explicit workspace still wins.
        let c = choose_startup(None, Some(Path::new("/ws-b")), Some(&s));
        assert_eq!(c.topology, Some(p("/a.ron")));
        assert_eq!(c.workspace, WorkspaceChoice::Dir(p("/ws-b")));
        // The built-in demo was last: it comes back in its workspace.
        let s = saved(None, WorkspaceChoice::Default);
        let c = choose_startup(None, None, Some(&s));
        assert_eq!(c.topology, None);
        assert_eq!(c.workspace, WorkspaceChoice::Default);
    }

    #[test]
    fn nothing_saved_gives_the_demo() {
        let c = choose_startup(None, None, None);
        assert_eq!(
            c,
            StartupChoice {
                topology: None,
                workspace: WorkspaceChoice::Default,
                restored: false
            }
        );
    }

    #[test]
    fn a_last_topology_that_no_longer_loads_falls_back_to_the_demo() {
        let s = saved(
            Some("/no/such/last.ron"),
            WorkspaceChoice::Dir(p("/ws-last")),
        );
        let st = Startup::with_persisted(None, None, Some(&s));
        assert_eq!(st.source, TopologySource::BuiltIn);
        assert_eq!(st.workspace, WorkspaceChoice::Default);
        let e = st.error.unwrap();
        assert!(e.contains("/no/such/last.ron"), "{e}");
        assert!(e.contains("cannot read"), "{e}");
        assert!(e.contains("built-in demo"), "{e}");
    }

    #[test]
    fn recent_files_are_unique_newest_first_and_bounded() {
        let mut r = RecentFiles::from_paths(&[p("/a"), p("/b"), p("/a")]);
        assert_eq!(r.paths(), [p("/a"), p("/b")]);
        r.add(Path::new("/b"));
        assert_eq!(r.paths(), [p("/b"), p("/a")]);
        for i in 0..10 {
            r.add(&p(&format!("/f{i}")));
        }
        assert_eq!(r.paths().len(), RECENT_MAX);
        assert_eq!(r.paths()[0], p("/f9"));
        r.set_missing(vec![p("/f9")]);
        assert!(r.is_missing(Path::new("/f9")));
        r.remove(Path::new("/f9"));
        assert_eq!(r.paths()[0], p("/f8"));
        assert!(!r.is_missing(Path::new("/f9")));
    }

    #[test]
    fn missing_files_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().join("here.ron");
        std::fs::write(&here, "x").unwrap();
        let gone = dir.path().join("gone.ron");
        assert_eq!(missing_files(&[here, gone.clone()]), [gone]);
    }

    #[test]
    fn an_older_save_without_some_fields_loads_with_defaults() {
        let s: Persisted = ron::from_str("(theme: Dark, recent: [\"/a.ron\"])").unwrap();
        assert_eq!(s.theme, ThemeChoice::Dark);
        assert_eq!(s.recent, [p("/a.ron")]);
        assert!(s.show_log);
        assert_eq!(s.workspace, WorkspaceChoice::Default);
    }
}
