//! The demo's choreography: arriving at a step, showing it in the panels an operator
//! uses (beats), pressing their buttons, routing the command they send, and taking the
//! worker's report of the step. Moved verbatim from `demo.rs`.

use super::*;

impl DrApp {
    /// The clock stands at the next step's time: show the step, then run it.
    pub(super) fn demo_arrived(&mut self, at: SimTime) {
        let dwell = self.demo.dwell;
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        let Some(step) = p.step().cloned() else {
            return;
        };
        let number = p.next + 1;
        let total = p.total();
        let text = step
            .caption
            .clone()
            .unwrap_or_else(|| action_words(&step.action));
        p.caption = Some(Caption {
            number,
            at,
            text: text.clone(),
            outcome: None,
            detail: String::new(),
        });
        if at != from_minutes(step.at) {
            self.log.warning(format!(
                "Demo step {number} of {total} runs at {}, after its time {}: the clock had passed it",
                mm_ss(at),
                mm_ss(from_minutes(step.at))
            ));
        }
        let now = Instant::now();
        let show = |beat: Beat, after: Duration| Stage::Show {
            beat,
            due: now + after,
        };
        let stage = match &step.action {
            Action::Command(Command::Migrate { vm, to, mode, .. }) => {
                self.select_vm(vm);
                self.show_side(SideTab::Migrations);
                self.wizard.prefill(vm, to, *mode);
                show(Beat::Confirm, dwell / 2)
            }
            Action::Command(Command::CancelMigration { vm })
            | Action::Command(Command::RetryRollback { vm }) => {
                self.select_vm(vm);
                self.show_side(SideTab::Migrations);
                show(Beat::Direct, dwell / 2)
            }
            Action::Command(Command::ReplicateNow { .. })
            | Action::Command(Command::PauseReplication { .. })
            | Action::Command(Command::ResumeReplication { .. })
            | Action::Command(Command::LinkDown)
            | Action::Command(Command::LinkUp)
            | Action::Command(Command::SiteUp { .. })
            | Action::Command(Command::Reprotect { .. }) => {
                self.show_side(SideTab::Replication);
                show(Beat::Direct, dwell / 2)
            }
            Action::Command(Command::Disaster { site }) => {
                self.show_side(SideTab::Replication);
                self.disaster = Some(site.clone());
                show(Beat::CloseDisaster, dwell)
            }
            Action::Command(Command::Failover {
                protection_groups,
                kind,
                point,
            }) => {
                self.show_side(SideTab::Replication);
                self.main_tab = MainTab::Failover;
                self.failover.reset();
                self.failover.prefill(
                    protection_groups,
                    *kind,
                    point.map(crate::engine::from_minutes),
                );
                show(Beat::Scan, dwell / 2)
            }
            Action::Expect(e) => {
                match e {
                    Expectation::Recovered { vm, .. } | Expectation::Lost { vm } => {
                        // The failover's results are on the Failover tab: keep it.
                        self.selection = Some(Selection::Vm(vm.clone()));
                    }
                    Expectation::Located { vm, .. }
                    | Expectation::Consistent { vm }
                    | Expectation::WritesLost { vm, .. }
                    | Expectation::Rating { vm, .. }
                    | Expectation::MigrationDone { vm }
                    | Expectation::Protected { vm } => self.select_vm(vm),
                    // The resilience tab shows these.
                    Expectation::Compliant { .. }
                    | Expectation::OutOfCompliance { .. }
                    | Expectation::ServedBy { .. }
                    | Expectation::Replicating { .. }
                    | Expectation::OnHost { .. }
                    | Expectation::GroupMigrated { .. }
                    | Expectation::InMaintenance { .. } => self.show_resilience(&step.action),
                }
                show(Beat::Direct, Duration::ZERO)
            }
            Action::Command(
                Command::StartWorkloads
                | Command::StopWorkloads
                | Command::CleanupTestFailover
                | Command::Rescan { .. }
                | Command::AddVm { .. },
            ) => show(Beat::Direct, Duration::ZERO),
            Action::Command(Command::MigrateGroup { .. })
            | Action::Command(Command::MigrateAcross { .. })
            | Action::Command(Command::CancelAcross { .. })
            | Action::Command(Command::EnterMaintenance { .. })
            | Action::Command(Command::ExitMaintenance { .. })
            | Action::Command(Command::Balance { .. }) => {
                self.show_side(SideTab::Migrations);
                self.show_resilience(&step.action);
                show(Beat::Direct, dwell / 2)
            }
            Action::Command(Command::CreateDatastore { .. })
            | Action::Command(Command::PartitionSite { .. })
            | Action::Command(Command::HealPartition)
            | Action::Command(Command::ArrayFault { .. })
            | Action::Command(Command::ArrayHealthy { .. })
            | Action::Command(Command::HostFault { .. })
            | Action::Command(Command::HostHealthy { .. }) => {
                self.show_resilience(&step.action);
                show(Beat::Direct, dwell / 2)
            }
        };
        if let Some(p) = self.demo.player.as_mut() {
            p.stage = stage;
        }
        self.ctx.request_repaint();
    }

    /// Shows the Resilience tab scrolled to the section the step is about.
    pub(super) fn show_resilience(&mut self, action: &Action) {
        use crate::gui::resilience::Section;
        let section = match action {
            Action::Command(Command::CreateDatastore { .. })
            | Action::Command(Command::PartitionSite { .. })
            | Action::Command(Command::HealPartition)
            | Action::Expect(Expectation::Compliant { .. })
            | Action::Expect(Expectation::OutOfCompliance { .. }) => Section::Distributed,
            Action::Command(Command::HostFault { .. })
            | Action::Command(Command::HostHealthy { .. })
            | Action::Expect(Expectation::OnHost { .. }) => Section::Hosts,
            Action::Command(Command::MigrateGroup { .. })
            | Action::Expect(Expectation::GroupMigrated { .. }) => Section::GroupMigration,
            Action::Command(Command::MigrateAcross { .. })
            | Action::Command(Command::CancelAcross { .. }) => Section::Across,
            Action::Command(Command::EnterMaintenance { .. })
            | Action::Command(Command::ExitMaintenance { .. })
            | Action::Command(Command::Balance { .. })
            | Action::Expect(Expectation::InMaintenance { .. }) => Section::Clusters,
            _ => Section::ArrayHealth,
        };
        self.main_tab = MainTab::Resilience;
        self.resilience.focus = Some(section);
    }

    pub(super) fn select_vm(&mut self, vm: &str) {
        self.selection = Some(Selection::Vm(vm.to_string()));
        self.main_tab = MainTab::Details;
    }

    pub(super) fn show_side(&mut self, tab: SideTab) {
        self.side_tab = tab;
        self.show_migrations = true;
    }

    /// Plays one beat of the choreography.
    pub(super) fn demo_beat(&mut self, beat: Beat) {
        let dwell = self.demo.dwell;
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        let Some(step) = p.step().cloned() else {
            return;
        };
        let now = Instant::now();
        let next = match beat {
            Beat::Confirm => {
                if let Action::Command(Command::Migrate { confirm, .. }) = step.action {
                    self.wizard.confirmed = confirm;
                }
                Stage::Show {
                    beat: Beat::Start,
                    due: now + dwell,
                }
            }
            Beat::Start => {
                self.wizard.press_start();
                Stage::Pressed(Press::Start)
            }
            Beat::Scan => {
                self.main_tab = MainTab::Failover;
                self.failover.press_scan();
                Stage::Show {
                    beat: Beat::Scanned,
                    due: now,
                }
            }
            Beat::Scanned => {
                if self.failover.scanning() {
                    Stage::Show {
                        beat: Beat::Scanned,
                        due: now,
                    }
                } else if self.failover.scan.is_some() {
                    // The plan is on screen: let it be read, then run.
                    Stage::Show {
                        beat: Beat::Run,
                        due: now + dwell,
                    }
                } else {
                    // Scan was not pressable: the step runs as a headless run would.
                    return self.demo_run_step();
                }
            }
            Beat::Run => {
                self.main_tab = MainTab::Failover;
                self.failover.press_run();
                Stage::Pressed(Press::Run)
            }
            Beat::ConfirmRun => {
                self.failover.press_confirm();
                Stage::Pressed(Press::ConfirmRun)
            }
            Beat::CloseDisaster => {
                self.disaster = None;
                return self.demo_run_step();
            }
            Beat::Direct => return self.demo_run_step(),
        };
        if let Some(p) = self.demo.player.as_mut() {
            p.stage = next;
        }
        self.ctx.request_repaint();
    }

    /// A frame after a press: the command came through [`DrApp::demo_route`] (the stage
    /// is `Running` then), or the panel did not take the press.
    pub(super) fn demo_after_press(&mut self, press: Press) {
        let dwell = self.demo.dwell;
        match press {
            Press::Run if self.failover.confirming => {
                if let Some(p) = self.demo.player.as_mut() {
                    p.stage = Stage::Show {
                        beat: Beat::ConfirmRun,
                        due: Instant::now() + dwell / 2,
                    };
                }
                self.ctx.request_repaint();
            }
            // Start or Run was disabled (the panel says why on screen): the step runs
            // directly, and its outcome is what a headless run reports.
            Press::Start | Press::Run | Press::ConfirmRun => {
                self.demo_close_panels();
                self.demo_run_step();
            }
        }
    }

    /// Runs the current step on the worker.
    pub(super) fn demo_run_step(&mut self) {
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        let Some(step) = p.step().cloned() else {
            return;
        };
        p.stage = Stage::Running;
        self.worker.send(Request::RunStep {
            epoch: p.epoch,
            number: p.next + 1,
            step,
        });
    }

    /// Turns the command a panel sends for the step being shown into that step, so it runs
    /// exactly as the scenario says (and is reported as the headless runner reports it);
    /// every other request passes through.
    pub(in crate::gui) fn demo_route(&mut self, request: Request) -> Request {
        let Request::Engine(c) = &request else {
            return request;
        };
        let Some(p) = self.demo.player.as_mut() else {
            return request;
        };
        let Some(step) = p.step() else {
            return request;
        };
        if !matches!(p.stage, Stage::Pressed(_)) || !issues(step, c) {
            return request;
        }
        let step = step.clone();
        p.stage = Stage::Running;
        Request::RunStep {
            epoch: p.epoch,
            number: p.next + 1,
            step,
        }
    }

    /// Takes in the worker's answers to the player.
    pub(in crate::gui) fn demo_report(&mut self, report: crate::gui::worker::Report) {
        use crate::gui::worker::Report;
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        match report {
            Report::Reached { epoch, at } if epoch == p.epoch => {
                if let Stage::Arriving { rush } = p.stage {
                    if p.playing || rush {
                        self.demo_arrived(at);
                    } else {
                        // Paused (the clock was run there by hand, or the step is at
                        // this very instant): wait for Play or Step.
                        p.stage = Stage::AtStep(at);
                    }
                }
            }
            Report::StepDone {
                epoch,
                number,
                result,
            } if epoch == p.epoch && p.stage == Stage::Running && number == p.next + 1 => {
                match result {
                    Ok(r) => self.demo_step_done(r),
                    Err(e) => {
                        p.error = Some(e.clone());
                        p.stage = Stage::Finished;
                        p.playing = false;
                        self.log
                            .error(format!("Demo stopped at step {number}: {e}"));
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn demo_step_done(&mut self, r: StepReport) {
        let dwell = self.demo.dwell;
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        let total = p.total();
        let at = p.caption.as_ref().map_or(from_minutes(r.at), |c| c.at);
        if let Some(c) = p.caption.as_mut() {
            c.outcome = Some(r.outcome);
            c.detail = r.detail.clone();
        }
        let text = p
            .caption
            .as_ref()
            .map_or_else(String::new, |c| c.text.clone());
        let level = match r.outcome {
            StepOutcome::Ok | StepOutcome::Pass => crate::gui::Level::Info,
            StepOutcome::Refused => crate::gui::Level::Warning,
            StepOutcome::Error | StepOutcome::Fail => crate::gui::Level::Error,
        };
        let message = format!(
            "Demo step {} of {total}: {text} — {}: {}",
            r.step,
            outcome_words(r.outcome),
            r.detail
        );
        p.reports.push(r);
        p.next += 1;
        let same_instant = p.step().map(|s| from_minutes(s.at)) == Some(at);
        let playing = p.playing;
        self.log.record(
            crate::gui::Kind::Result,
            level,
            message,
            Some(at),
            level != crate::gui::Level::Info,
        );
        if p.next >= total {
            self.demo_finish();
        } else if playing && same_instant && !dwell.is_zero() {
            // The next step runs at this very instant: let the caption be read first.
            p.stage = Stage::Reading {
                due: Instant::now() + dwell,
            };
            self.ctx.request_repaint();
        } else {
            self.demo_advance(false);
        }
    }
}
