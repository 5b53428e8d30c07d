//! Notify commands as keepalived 2.x reads them (`COMMAND [USER [GROUP]]`), `MISC_CHECK`'s
//! `user USER [GROUP]`, and `global_defs`' `script_user`.

use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<KeepalivedConfig, ConfigErrors> {
    parse_with(text, Path::new("/t/k.conf"), Includes::Refuse)
}

fn script(command: &str, user: Option<&str>, group: Option<&str>) -> Option<Script> {
    Some(Script {
        command: command.into(),
        user: user.map(Into::into),
        group: group.map(Into::into),
    })
}

const TEXT: &str = r#"global_defs {
    script_user rvs-notify rvs-group
}
virtual_server 10.0.0.3 80 {
    quorum_up "/bin/q up"
    quorum_down /bin/qdown root
    real_server 10.0.0.7 80 {
        notify_up "/usr/local/bin/notify.sh up 10.0.0.7" nobody nogroup
        notify_down "/usr/local/bin/notify.sh down"
        MISC_CHECK {
            misc_path "/bin/check web1"
            user nobody nogroup
        }
        MISC_CHECK {
            misc_path /bin/true
        }
    }
}
"#;

#[test]
fn the_words_after_a_notify_command_are_its_user_and_group() {
    let c = parse(TEXT).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let vs = &c.virtual_servers[0];
    let r = &vs.reals[0];
    assert_eq!(
        r.notify_up,
        script(
            "/usr/local/bin/notify.sh up 10.0.0.7",
            Some("nobody"),
            Some("nogroup")
        )
    );
    // script_user is the default of those that name no user ...
    assert_eq!(
        r.notify_down,
        script(
            "/usr/local/bin/notify.sh down",
            Some("rvs-notify"),
            Some("rvs-group")
        )
    );
    assert_eq!(
        vs.quorum_up,
        script("/bin/q up", Some("rvs-notify"), Some("rvs-group"))
    );
    // ... and a user without a group runs with the user's own group
    assert_eq!(vs.quorum_down, script("/bin/qdown", Some("root"), None));
    let users: Vec<_> = r
        .checkers
        .iter()
        .map(|c| match &c.kind {
            CheckKind::Misc(m) => (m.user.as_deref(), m.group.as_deref()),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(
        users,
        vec![
            (Some("nobody"), Some("nogroup")),
            (Some("rvs-notify"), Some("rvs-group"))
        ]
    );
}

#[test]
fn an_unquoted_command_line_with_arguments_is_a_located_error() {
    let e = parse(
        "virtual_server 10.0.0.3 80 {\n real_server 10.0.0.7 80 {\n  notify_up /bin/n.sh up 10.0.0.7 80\n }\n}\n",
    )
    .unwrap_err();
    assert_eq!(
        e.0[0].to_string(),
        "/t/k.conf:3:35: unexpected '80': 'notify_up' takes a command, then at most a user and a \
         group (quote a command line that has arguments)"
    );
    let e = parse(
        "virtual_server 10.0.0.3 80 {\n real_server 10.0.0.7 80 {\n  MISC_CHECK {\n   misc_path /bin/true\n   user a b c\n  }\n }\n}\n",
    )
    .unwrap_err();
    assert!(
        e.0[0]
            .to_string()
            .starts_with("/t/k.conf:5:13: unexpected 'c'"),
        "{e}"
    );
}
