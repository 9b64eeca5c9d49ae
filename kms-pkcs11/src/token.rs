//! The connection to a token: the module, the slot found by label, the login, a pool of
//! sessions, and the reconnection after the token went away.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use kms_core::KmsError;

use crate::Pkcs11Config;

/// The token has no object for a handle the engine holds.
#[derive(Debug)]
pub(crate) struct Missing;

/// Why an operation in a session failed.
#[derive(Debug)]
pub(crate) enum OpError {
    Ck(CkError),
    Missing,
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

impl From<Missing> for OpError {
    fn from(_: Missing) -> Self {
        OpError::Missing
    }
}

/// Errors that mean the token, the login or the session is gone: the connection is dropped
/// and made again.
fn gone(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
                | RvError::SlotIdInvalid
                | RvError::GeneralError,
            _
        )
    )
}

/// Errors that mean a cached object handle is stale (the object was made again, or the
/// module renumbered its objects).
fn stale(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
                | RvError::UnwrappingKeyHandleInvalid,
            _
        )
    )
}

fn unavailable(reason: impl Into<String>) -> KmsError {
    KmsError::KeyProviderUnavailable {
        reason: reason.into(),
    }
}

struct Connection {
    ctx: Pkcs11,
    slot: Slot,
    /// Sessions not in use. Every session is either here or used under the state's read
    /// lock, so none is alive when the module is finalized under the write lock.
    idle: Mutex<Vec<Session>>,
    generation: u64,
}

/// One token, shared by the key provider and the root key. Make one per module and process:
/// a module is initialized once per process.
pub struct Token {
    config: Pkcs11Config,
    state: RwLock<Option<Connection>>,
    generation: Mutex<u64>,
    /// Object handles by class and `CKA_ID`, for the current connection.
    objects: Mutex<HashMap<(u64, Vec<u8>), ObjectHandle>>,
    /// Held while token objects are made or destroyed, one at a time (not every module is
    /// safe for concurrent object creation), and by every operation with
    /// [`Pkcs11Config::serialize`].
    writes: Mutex<()>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads the module, finds the token by its label and logs in.
    ///
    /// Errors: `KeyProviderUnavailable` naming what failed (never the PIN).
    pub fn open(config: Pkcs11Config) -> Result<Self, KmsError> {
        let token = Token {
            config,
            state: RwLock::new(None),
            generation: Mutex::new(0),
            objects: Mutex::new(HashMap::new()),
            writes: Mutex::new(()),
        };
        token.connect()?;
        Ok(token)
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.config.token_label
    }

    /// True when the token answers now (a session opens and is logged in).
    pub fn is_available(&self) -> bool {
        self.run(|_| Ok(())).is_ok()
    }

    fn connect(&self) -> Result<(), KmsError> {
        let mut state = self
            .state
            .write()
            .map_err(|_| unavailable("the token's lock was poisoned"))?;
        if state.is_some() {
            return Ok(());
        }
        let module = self.config.module.display();
        let ctx = Pkcs11::new(&self.config.module)
            .map_err(|e| unavailable(format!("the PKCS#11 module {module} does not load: {e}")))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(unavailable(format!("C_Initialize of {module} failed: {e}"))),
        }
        let slot = ctx
            .get_slots_with_token()
            .map_err(|e| unavailable(format!("the module's slots cannot be listed: {e}")))?
            .into_iter()
            .find(|slot| {
                ctx.get_token_info(*slot)
                    .map(|info| info.label().trim_end() == self.config.token_label)
                    .unwrap_or(false)
            });
        let Some(slot) = slot else {
            let _ = ctx.finalize();
            return Err(unavailable(format!(
                "no token labelled {:?} is present in {module}",
                self.config.token_label
            )));
        };
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| unavailable(format!("a session on the token cannot be opened: {e}")))?;
        let pin = AuthPin::from(self.config.pin.as_str().to_owned());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => {
                drop(session);
                let _ = ctx.finalize();
                return Err(unavailable(format!("the token refused the login: {e}")));
            }
        }
        let mut generation = self
            .generation
            .lock()
            .map_err(|_| unavailable("the token's lock was poisoned"))?;
        *generation += 1;
        *state = Some(Connection {
            ctx,
            slot,
            idle: Mutex::new(vec![session]),
            generation: *generation,
        });
        if let Ok(mut objects) = self.objects.lock() {
            objects.clear();
        }
        Ok(())
    }

    /// Drops the connection of `generation` (if it is still the current one): its sessions
    /// are closed and the module finalized, so that the next call starts afresh.
    fn disconnect(&self, generation: u64) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        if state.as_ref().map(|c| c.generation) != Some(generation) {
            return;
        }
        if let Some(conn) = state.take() {
            if let Ok(mut idle) = conn.idle.lock() {
                idle.clear();
            }
            let _ = conn.ctx.finalize();
        }
        if let Ok(mut objects) = self.objects.lock() {
            objects.clear();
        }
    }

    /// As [`Token::run_with`], for operations that make or destroy token objects: one at a
    /// time.
    pub(crate) fn run_writing_with<T>(
        &self,
        f: impl Fn(&Session) -> Result<T, OpError>,
        map: impl Fn(&CkError) -> Option<KmsError>,
    ) -> Result<T, KmsError> {
        let _one = self
            .writes
            .lock()
            .map_err(|_| unavailable("the token's lock was poisoned"))?;
        self.run_in_session(f, map)
    }

    /// As [`Token::run`], for operations that make or destroy token objects.
    pub(crate) fn run_writing<T>(
        &self,
        f: impl Fn(&Session) -> Result<T, OpError>,
    ) -> Result<T, KmsError> {
        self.run_writing_with(f, |_| None)
    }

    /// Runs `f` in a pooled session; token errors answer `KeyProviderUnavailable`.
    pub(crate) fn run<T>(&self, f: impl Fn(&Session) -> Result<T, OpError>) -> Result<T, KmsError> {
        self.run_with(f, |_| None)
    }

    /// Runs `f` in a pooled session; `map` turns the errors that mean something for the
    /// request (authentication failed, bad material) into its own error. A session or token
    /// that is gone is reconnected and `f` tried once more.
    pub(crate) fn run_with<T>(
        &self,
        f: impl Fn(&Session) -> Result<T, OpError>,
        map: impl Fn(&CkError) -> Option<KmsError>,
    ) -> Result<T, KmsError> {
        if self.config.serialize {
            return self.run_writing_with(f, map);
        }
        self.run_in_session(f, map)
    }

    fn run_in_session<T>(
        &self,
        f: impl Fn(&Session) -> Result<T, OpError>,
        map: impl Fn(&CkError) -> Option<KmsError>,
    ) -> Result<T, KmsError> {
        let mut last = String::new();
        for _attempt in 0..2 {
            let state = self
                .state
                .read()
                .map_err(|_| unavailable("the token's lock was poisoned"))?;
            let Some(conn) = state.as_ref() else {
                drop(state);
                self.connect()?;
                continue;
            };
            let pooled = conn.idle.lock().ok().and_then(|mut idle| idle.pop());
            let session = match pooled {
                Some(s) => s,
                None => match conn.ctx.open_rw_session(conn.slot) {
                    Ok(s) => s,
                    Err(e) => {
                        last = format!("a session on the token cannot be opened: {e}");
                        let generation = conn.generation;
                        drop(state);
                        self.disconnect(generation);
                        continue;
                    }
                },
            };
            let give_back = |session: Session| {
                if let Ok(mut idle) = conn.idle.lock() {
                    if idle.len() < self.config.max_idle_sessions.max(1) {
                        idle.push(session);
                    }
                }
            };
            match f(&session) {
                Ok(v) => {
                    give_back(session);
                    return Ok(v);
                }
                Err(OpError::Missing) => {
                    give_back(session);
                    return Err(KmsError::internal(
                        "the token has no object for this key's handle (destroyed outside the engine?)",
                    ));
                }
                Err(OpError::Ck(e)) => {
                    if let Some(mapped) = map(&e) {
                        give_back(session);
                        return Err(mapped);
                    }
                    if gone(&e) {
                        last = format!("the token failed: {e}");
                        drop(session);
                        let generation = conn.generation;
                        drop(state);
                        self.disconnect(generation);
                        continue;
                    }
                    if stale(&e) {
                        last = format!("the token failed: {e}");
                        give_back(session);
                        if let Ok(mut objects) = self.objects.lock() {
                            objects.clear();
                        }
                        continue;
                    }
                    give_back(session);
                    return Err(KmsError::internal(format!("the token failed: {e}")));
                }
            }
        }
        // Connect once more so that the error says why, when that is what fails.
        self.connect()?;
        Err(unavailable(last))
    }

    /// The object of `class` with `CKA_ID` `id` (cached for the connection).
    pub(crate) fn find(
        &self,
        s: &Session,
        class: ObjectClass,
        id: &[u8],
    ) -> Result<ObjectHandle, OpError> {
        let key = (u64::from(class), id.to_vec());
        if let Some(h) = self.objects.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(h);
        }
        let found = s
            .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])?
            .first()
            .copied()
            .ok_or(Missing)?;
        if let Ok(mut m) = self.objects.lock() {
            m.insert(key, found);
        }
        Ok(found)
    }

    /// Forgets the cached handles of `id` (its objects were destroyed).
    pub(crate) fn forget(&self, id: &[u8]) {
        if let Ok(mut m) = self.objects.lock() {
            m.retain(|(_, i), _| i != id);
        }
    }
}
