//! argon2id hashing and verification over memory this module hands out, so the RAM that
//! password checks take is bounded by how many run at once, whatever the allocator does.
//!
//! Why not `Argon2::verify_password`: it allocates its 19 MiB afresh on each call, on whatever
//! blocking-pool thread runs it. glibc then keeps a freed block of that size in that thread's
//! arena (its mmap threshold rises to the block's size after the first free), so a burst of
//! logins spread over the pool's threads left one or two blocks in each of 16 arenas: 400
//! logins took the process from 17 to 610 MiB. Here a burst reuses the same few buffers:
//! a buffer goes back to a free list after each hash and the list is emptied only when no
//! check is running or waiting (`Hold`), so an idle process keeps none.

use std::sync::{Arc, Mutex, MutexGuard};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::AuthError;
use crate::secret;

/// argon2id with m = 19 MiB, t = 2, p = 1: OWASP's minimum for argon2id, the parameters
/// `argon2` 0.5 also defaults to (so every hash stored so far has them), written out here so a
/// crate upgrade cannot change them. Chosen for a 1 GiB Raspberry Pi: the memory of one hash
/// times the number that run at once ([`parallelism`], at most 2) is at most 38 MiB, and one
/// hash takes about 0.1 s on a Pi 4 core (measured 65 ms on this x86 box's release build), so
/// two slots still check ~20 passwords a second — more than a household logs in. More memory
/// per hash would buy little against offline guessing of a stolen database and cost RAM the
/// box needs for streaming; more passes only make logins slower. p = 1: the concurrency is
/// across logins, not within one. Hashes stored with other parameters still verify: the PHC
/// string carries its own.
pub const M_COST_KIB: u32 = 19 * 1024;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

/// A stored hash asking for more memory than this is treated as wrong, never computed: the
/// bound above must hold even for a hash written by another tool.
const MAX_M_COST_KIB: u32 = 64 * 1024;

/// How many argon2 runs may go at once: one per core, at most 2. Two, not four on a
/// four-core Pi: it bounds argon2's RAM to 38 MiB on any box, and leaves cores to streaming
/// while a flood of logins is answered (see [`M_COST_KIB`]).
pub const MAX_PARALLEL: usize = 2;

pub fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_PARALLEL)
}

fn params() -> Result<Params, AuthError> {
    Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| AuthError::Hash(e.to_string()))
}

#[derive(Default)]
struct Pool {
    /// Checks running or waiting for a slot (live `Hold`s).
    holds: usize,
    free: Vec<Vec<Block>>,
}

/// Buffers for argon2, kept for at most `keep` concurrent runs while checks are under way.
pub struct HashMemory {
    keep: usize,
    pool: Mutex<Pool>,
}

/// Keeps the buffers alive while its owner runs or waits to run a hash; the last one dropped
/// frees them.
pub struct Hold(Arc<HashMemory>);

impl Drop for Hold {
    fn drop(&mut self) {
        let freed = {
            let mut pool = self.0.lock();
            pool.holds = pool.holds.saturating_sub(1);
            if pool.holds == 0 {
                std::mem::take(&mut pool.free)
            } else {
                Vec::new()
            }
        };
        // Freed outside the lock: giving 19 MiB back is not free.
        drop(freed);
    }
}

impl HashMemory {
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(HashMemory {
            keep: keep.max(1),
            pool: Mutex::new(Pool::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        match self.pool.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Call before waiting for a hash slot; keep it until the hash is done.
    pub fn hold(self: &Arc<Self>) -> Hold {
        self.lock().holds += 1;
        Hold(Arc::clone(self))
    }

    /// Runs `f` on `blocks` zeroed-or-reused blocks (argon2 overwrites every block it reads).
    fn with_blocks<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let mut buf = self.lock().free.pop().unwrap_or_default();
        if buf.len() < blocks {
            buf = vec![Block::default(); blocks];
        }
        let out = f(&mut buf[..blocks]);
        let mut pool = self.lock();
        if pool.holds > 0 && pool.free.len() < self.keep {
            pool.free.push(buf);
        }
        out
    }

    /// A new PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for `password`.
    pub fn hash(&self, password: &str) -> Result<String, AuthError> {
        let params = params()?;
        let salt = SaltString::encode_b64(&secret::random_bytes()[..16])
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        let mut salt_raw = [0u8; 16];
        let salt_bytes = salt
            .as_salt()
            .decode_b64(&mut salt_raw)
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.with_blocks(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks)
        })
        .map_err(|e| AuthError::Hash(e.to_string()))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| AuthError::Hash(e.to_string()))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| AuthError::Hash(e.to_string()))?),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` matches the stored PHC string (any argon2 variant and parameters
    /// up to [`MAX_M_COST_KIB`]). A malformed string never matches.
    pub fn verify(&self, password: &str, stored: &str) -> bool {
        self.try_verify(password, stored).unwrap_or(false)
    }

    fn try_verify(&self, password: &str, stored: &str) -> Option<bool> {
        let phc = PasswordHash::new(stored).ok()?;
        let algorithm = Algorithm::try_from(phc.algorithm).ok()?;
        let version = match phc.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&phc).ok()?;
        if params.m_cost() > MAX_M_COST_KIB {
            tracing::warn!(
                m_cost = params.m_cost(),
                "stored password hash asks for too much memory; refused"
            );
            return None;
        }
        let salt: Salt<'_> = phc.salt?;
        let mut salt_raw = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_raw).ok()?;
        let expected = phc.hash?;
        let mut out = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params.clone());
        self.with_blocks(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks)
        })
        .ok()?;
        Some(secret::ct_eq(&out, expected.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, SaltString};

    use super::*;

    #[test]
    fn hashes_with_pinned_parameters_and_verifies() {
        let mem = HashMemory::new(2);
        let h = mem.hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(mem.verify("correct horse", &h));
        assert!(!mem.verify("correct horsf", &h));
        assert!(!mem.verify("correct horse", "not a phc string"));
    }

    #[test]
    fn hashes_made_elsewhere_with_other_parameters_still_verify() {
        let mem = HashMemory::new(1);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        for (alg, m, t) in [
            (Algorithm::Argon2id, 8 * 1024, 3),
            (Algorithm::Argon2i, 4 * 1024, 1),
            (Algorithm::Argon2d, 16 * 1024, 1),
        ] {
            let p = Params::new(m, t, 1, None).unwrap();
            let h = Argon2::new(alg, Version::V0x13, p)
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string();
            assert!(mem.verify("pw", &h), "{h}");
            assert!(!mem.verify("px", &h), "{h}");
        }
        // more memory than a check may take is refused, not computed
        let p = Params::new(MAX_M_COST_KIB + 1024, 1, 1, None).unwrap();
        let h = Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(!mem.verify("pw", &h));
    }

    #[test]
    fn buffers_are_kept_only_while_held() {
        let mem = HashMemory::new(2);
        let h = mem.hash("pw-one-two").unwrap();
        assert!(mem.lock().free.is_empty(), "nothing kept without a hold");
        let a = mem.hold();
        let b = mem.hold();
        assert!(mem.verify("pw-one-two", &h));
        assert_eq!(mem.lock().free.len(), 1);
        drop(a);
        assert_eq!(mem.lock().free.len(), 1, "still held by b");
        drop(b);
        assert!(
            mem.lock().free.is_empty(),
            "the last hold frees the buffers"
        );
    }
}
