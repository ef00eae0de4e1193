//! The player's state, driven without a window.

use super::*;

fn sample(name: &str) -> Script {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample_scenarios")
        .join(name);
    Script::load(&path).unwrap()
}

fn report(step: usize, outcome: StepOutcome) -> StepReport {
    StepReport {
        step,
        at: 0.0,
        action: String::new(),
        caption: None,
        outcome,
        detail: String::new(),
    }
}

#[test]
fn a_new_player_opens_its_workspace_before_any_step() {
    let script = sample("planned_failover.ron");
    let steps = script.scenario.steps.len();
    let p = Player::new(script, PathBuf::from("ws"), 3, false);
    assert_eq!(p.total(), steps);
    assert_eq!(p.counter(), format!("step 0 of {steps}"));
    assert!(!p.ready(), "still opening its workspace");
    assert!(!p.finished());
    assert_eq!(p.step().map(|s| s.at), Some(0.0));
}

#[test]
fn the_counter_follows_the_stage_and_the_verdicts_the_reports() {
    let mut p = Player::new(sample("planned_failover.ron"), "ws".into(), 1, false);
    p.stage = Stage::Arriving { rush: false };
    assert!(
        p.ready(),
        "paused on the way to a step: waits for Play or Step"
    );
    p.playing = true;
    assert!(!p.ready());
    p.stage = Stage::Running;
    assert_eq!(p.shown_step(), 1, "the step running is on screen");
    p.reports.push(report(1, StepOutcome::Ok));
    p.reports.push(report(2, StepOutcome::Pass));
    p.reports.push(report(3, StepOutcome::Fail));
    p.next = 3;
    p.stage = Stage::Reading {
        due: Instant::now(),
    };
    assert_eq!(p.shown_step(), 3, "the last step run stays on screen");
    assert_eq!(p.verdicts(), (1, 1));
    p.stage = Stage::Finished;
    assert!(p.finished());
}
