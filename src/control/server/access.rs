//! Who may do what on the control socket: the grants of `[supervisor]` and the access each
//! request needs.

use crate::control::protocol::Request;

/// What a peer may ask for: each level includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// status, watch, log_paths.
    Read,
    /// Read, and start, stop, restart, signal.
    Operate,
    /// Everything: add, remove, constrain, reload, reopen, shutdown too.
    Admin,
}

impl Access {
    /// The word used in messages and docs.
    pub fn word(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Operate => "operate",
            Access::Admin => "admin",
        }
    }
}

/// The access a request needs.
pub fn required(request: &Request) -> Access {
    match request {
        Request::Status { .. } | Request::Watch | Request::LogPaths { .. } => Access::Read,
        Request::Start { .. } | Request::Stop { .. } | Request::Restart { .. } | Request::Signal { .. } => {
            Access::Operate
        }
        Request::Constrain { .. }
        | Request::Add { .. }
        | Request::Remove { .. }
        | Request::Reopen
        | Request::Reload
        | Request::Shutdown => Access::Admin,
    }
}

/// Who may do what on the socket, from `[supervisor]`: root and holden's own uid may do
/// everything, and so may `admin_uids`; `allow_uids` may read and operate; `read_uids` may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub read_uids: Vec<u32>,
    pub allow_uids: Vec<u32>,
    pub admin_uids: Vec<u32>,
}

impl Grants {
    /// The grants of a `[supervisor]` table.
    pub fn from_settings(s: &crate::config::SupervisorSettings) -> Grants {
        Grants {
            read_uids: s.read_uids.clone(),
            allow_uids: s.allow_uids.clone(),
            admin_uids: s.admin_uids.clone(),
        }
    }

    /// The access of a peer with `uid`, or `None`: it may not use the socket at all.
    pub fn access(&self, uid: u32, own_uid: u32) -> Option<Access> {
        if uid == 0 || uid == own_uid || self.admin_uids.contains(&uid) {
            Some(Access::Admin)
        } else if self.allow_uids.contains(&uid) {
            Some(Access::Operate)
        } else if self.read_uids.contains(&uid) {
            Some(Access::Read)
        } else {
            None
        }
    }
}

/// The sentence for a request that needs more than the peer has.
pub fn forbidden_message(uid: u32, command: &str, need: Access) -> String {
    match need {
        Access::Read => format!("uid {uid} may not {command}: reading needs read_uids, allow_uids or admin_uids"),
        Access::Operate => format!(
            "uid {uid} may not {command}: start, stop, restart and signal need uid {uid} in allow_uids (or admin_uids) in [supervisor]"
        ),
        Access::Admin => format!(
            "uid {uid} may not {command}: add, remove, constrain, reload, reopen and shutdown are for root, holden's own uid and admin_uids only (an admin can run programs as holden's user)"
        ),
    }
}
