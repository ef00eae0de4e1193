use super::*;
use crate::scenario::Step;

fn step(action: Action) -> Step {
    Step {
        at: 1.0,
        action,
        caption: None,
    }
}

#[test]
fn panel_commands_match_their_steps_loosely() {
    let m = step(Action::Command(Command::Migrate {
        vm: "vm1".into(),
        to: "ds-2".into(),
        mode: crate::engine::copy::CopyMode::Mirror,
        confirm: true,
    }));
    let mut c = m.action.command().unwrap().clone();
    assert!(issues(&m, &c));
    if let Command::Migrate { confirm, .. } = &mut c {
        *confirm = false;
    }
    assert!(
        issues(&m, &c),
        "the wizard sends confirm only for a risky move"
    );
    assert!(!issues(
        &m,
        &Command::Migrate {
            vm: "vm1".into(),
            to: "ds-3".into(),
            mode: crate::engine::copy::CopyMode::Mirror,
            confirm: true,
        }
    ));
    let f = step(Action::Command(Command::Failover {
        protection_groups: vec!["pg-b".into(), "pg-a".into()],
        kind: crate::engine::FailoverKind::Unplanned,
        point: None,
    }));
    assert!(issues(
        &f,
        &Command::Failover {
            protection_groups: vec!["pg-a".into(), "pg-b".into()],
            kind: crate::engine::FailoverKind::Unplanned,
            point: None,
        }
    ));
    assert!(!issues(
        &f,
        &Command::Failover {
            protection_groups: vec!["pg-a".into()],
            kind: crate::engine::FailoverKind::Unplanned,
            point: None,
        }
    ));
    assert!(!issues(
        &step(Action::Expect(Expectation::Lost { vm: "vm1".into() })),
        &Command::LinkDown
    ));
    assert!(issues(
        &step(Action::Command(Command::LinkDown)),
        &Command::LinkDown
    ));
}

#[test]
fn steps_without_a_caption_say_what_they_do() {
    assert_eq!(
        action_words(&Action::Command(Command::Migrate {
            vm: "vm1".into(),
            to: "ds-2".into(),
            mode: crate::engine::copy::CopyMode::Mirror,
            confirm: true,
        })),
        "Migrate vm1 to ds-2 (mirror), the operator confirming the risk"
    );
    assert_eq!(
        action_words(&Action::Expect(Expectation::WritesLost {
            vm: "db-01".into(),
            max: 0
        })),
        "Check: db-01 lost at most 0 acknowledged write(s)"
    );
    assert_eq!(
        action_words(&Action::Command(Command::LinkDown)),
        "Link down"
    );
}

#[test]
fn every_sample_scenario_is_listed_by_name() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLES_DIR);
    let samples = list_samples(&dir);
    assert!(samples.len() >= 6, "{samples:?}");
    assert!(
        samples
            .iter()
            .any(|s| s.name == "Disaster in mid-copy recovers the source")
    );
    assert!(
        samples.iter().all(|s| !s.name.ends_with(".ron")),
        "all load"
    );
}
