//! The soft limit of open files goes up to the hard one at start, as nginx and Go programs
//! do: each stream holds its file open (an HTTP/2 connection up to 32 of them), and at the
//! usual soft limit of 1,024 one address's 40 stalled connections made every open and accept
//! fail with EMFILE (attack pass 6). systemd's default hard limit is 524,288.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

pub fn raise() {
    let now = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (now.current, now.maximum) {
        if soft < hard {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                eprintln!("warning: cannot raise the open-files limit from {soft} to {hard}: {e}");
            }
        }
    }
}
