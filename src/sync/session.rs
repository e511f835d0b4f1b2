//! One sync connection as the accepting node sees it: who is at the other end (the node id
//! its TLS certificate hashes to) and how far it got in proving membership. Nothing but
//! `hello` and `auth` is answered before the proof checks; every refusal looks the same.

use std::sync::Mutex;

use super::proof::{self, Role, Transcript, NONCE_BYTES};
use super::wire::{self, Auth, Hello, HelloReply, API};
use super::ClusterKey;
use crate::secret;

/// This node, as it presents itself on sync connections.
#[derive(Clone)]
pub struct Me {
    pub id: String,
    pub name: String,
    pub key: ClusterKey,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The peer speaks another sync API version.
    #[error("this node speaks sync API {API}; the peer sent {0}")]
    Api(u32),
    #[error("{0}")]
    BadRequest(&'static str),
    /// No proof, or a wrong one: the caller answers exactly as for any other refusal.
    #[error("not a member of this cluster")]
    Forbidden,
}

enum State {
    Fresh,
    Challenged {
        server_nonce: [u8; NONCE_BYTES],
        client_nonce: [u8; NONCE_BYTES],
    },
    Member {
        name: String,
    },
}

/// Per connection; shared by its requests.
pub struct Session {
    peer_id: String,
    state: Mutex<State>,
}

impl Session {
    pub fn new(peer_id: String) -> Self {
        Session {
            peer_id,
            state: Mutex::new(State::Fresh),
        }
    }

    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Only ever replaced whole: a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers a hello with a fresh nonce and this node's proof. A second hello on the same
    /// connection starts over (and drops membership already proved).
    pub fn hello(&self, me: &Me, hello: &Hello) -> Result<HelloReply, SessionError> {
        if hello.api != API {
            return Err(SessionError::Api(hello.api));
        }
        let client_nonce = wire::decode_nonce(&hello.nonce).ok_or(SessionError::BadRequest(
            "nonce: expected 32 bytes of URL-safe base64",
        ))?;
        let server_nonce = proof::nonce();
        let transcript = Transcript {
            server_id: &me.id,
            client_id: &self.peer_id,
            server_nonce: &server_nonce,
            client_nonce: &client_nonce,
        };
        let reply = HelloReply {
            api: API,
            id: me.id.clone(),
            name: me.name.clone(),
            nonce: secret::b64(&server_nonce),
            proof: secret::b64(&transcript.proof(&me.key, Role::Server)),
        };
        *self.state() = State::Challenged {
            server_nonce,
            client_nonce,
        };
        Ok(reply)
    }

    /// Checks the connecting node's proof; on success the connection is a member's and the
    /// peer's (cleaned) name is returned. A wrong proof ends the attempt: the next one needs
    /// a new hello, hence a new nonce.
    pub fn auth(&self, me: &Me, auth: &Auth) -> Result<String, SessionError> {
        let mut state = self.state();
        let State::Challenged {
            server_nonce,
            client_nonce,
        } = &*state
        else {
            return Err(SessionError::Forbidden);
        };
        let transcript = Transcript {
            server_id: &me.id,
            client_id: &self.peer_id,
            server_nonce,
            client_nonce,
        };
        let ok = wire::decode_proof(&auth.proof)
            .is_some_and(|p| transcript.check(&me.key, Role::Client, &p));
        if !ok {
            *state = State::Fresh;
            return Err(SessionError::Forbidden);
        }
        let name = wire::clean_name(&auth.name);
        *state = State::Member { name: name.clone() };
        Ok(name)
    }

    /// The peer's name once it has proved membership.
    pub fn member(&self) -> Result<String, SessionError> {
        match &*self.state() {
            State::Member { name } => Ok(name.clone()),
            _ => Err(SessionError::Forbidden),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(key: &ClusterKey) -> Me {
        Me {
            id: "a".repeat(64),
            name: "living-room".into(),
            key: key.clone(),
        }
    }

    /// What a connecting node with `key` sends after `reply`, once it checked the server's
    /// proof (`check`; a node of another cluster would fail that check — without it, it goes
    /// on regardless, to show the server refuses it too).
    fn answer_checked(
        key: &ClusterKey,
        client_nonce: &[u8],
        reply: &HelloReply,
        check: bool,
    ) -> Auth {
        let server_nonce = wire::decode_nonce(&reply.nonce).unwrap();
        let t = Transcript {
            server_id: &reply.id,
            client_id: &"b".repeat(64),
            server_nonce: &server_nonce,
            client_nonce,
        };
        if check {
            assert!(t.check(key, Role::Server, &secret::unb64(&reply.proof).unwrap()));
        }
        Auth {
            proof: secret::b64(&t.proof(key, Role::Client)),
            name: "office".into(),
        }
    }

    fn answer(key: &ClusterKey, client_nonce: &[u8], reply: &HelloReply) -> Auth {
        answer_checked(key, client_nonce, reply, true)
    }

    fn answer_with(key: &ClusterKey, client_nonce: &[u8], reply: &HelloReply) -> Auth {
        answer_checked(key, client_nonce, reply, false)
    }

    #[test]
    fn only_a_fresh_proof_under_the_cluster_key_makes_a_member() {
        let key = ClusterKey::generate();
        let me = me(&key);
        let s = Session::new("b".repeat(64));
        assert_eq!(s.member(), Err(SessionError::Forbidden));
        assert_eq!(
            s.auth(
                &me,
                &Auth {
                    proof: secret::b64(&[0; 32]),
                    name: "x".into()
                }
            ),
            Err(SessionError::Forbidden),
            "auth before hello"
        );
        let cn = proof::nonce();
        let hello = Hello {
            api: API,
            nonce: secret::b64(&cn),
        };
        let reply = s.hello(&me, &hello).unwrap();

        // Another cluster's key (or garbage): refused, and the attempt is over.
        let other_key = answer_with(&ClusterKey::generate(), &cn, &reply);
        assert_eq!(s.auth(&me, &other_key), Err(SessionError::Forbidden));
        let reply = s.hello(&me, &hello).unwrap();
        let wrong = Auth {
            proof: secret::b64(&[9; 32]),
            name: "x".into(),
        };
        assert_eq!(s.auth(&me, &wrong), Err(SessionError::Forbidden));
        let good_for_old = answer(&key, &cn, &reply);
        assert_eq!(
            s.auth(&me, &good_for_old),
            Err(SessionError::Forbidden),
            "a failed attempt needs a new hello"
        );

        // A new hello: the right proof makes a member. Replaying it after another hello
        // (a new server nonce) does not.
        let reply = s.hello(&me, &hello).unwrap();
        let good = answer(&key, &cn, &reply);
        assert_eq!(s.auth(&me, &good), Ok("office".into()));
        assert_eq!(s.member(), Ok("office".into()));
        s.hello(&me, &hello).unwrap();
        assert_eq!(s.member(), Err(SessionError::Forbidden));
        assert_eq!(s.auth(&me, &good), Err(SessionError::Forbidden), "replayed");
    }

    #[test]
    fn another_api_version_or_a_bad_nonce_is_refused_by_name() {
        let me = me(&ClusterKey::generate());
        let s = Session::new("b".repeat(64));
        let e = s.hello(
            &me,
            &Hello {
                api: 2,
                nonce: secret::b64(&[0; 32]),
            },
        );
        assert_eq!(e, Err(SessionError::Api(2)));
        assert!(e.unwrap_err().to_string().contains("speaks sync API 1"));
        let e = s.hello(
            &me,
            &Hello {
                api: API,
                nonce: "short".into(),
            },
        );
        assert!(matches!(e, Err(SessionError::BadRequest(_))));
    }
}
