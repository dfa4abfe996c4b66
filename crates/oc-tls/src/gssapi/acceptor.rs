//! The server side of SPNEGO (`Authorization: Negotiate`), as ocserv's `auth = gssapi`
//! accepts it: the service keys from a keytab (or the default one), the client's
//! principal, its local account name (krb5's aname-to-localname rules, or the mechanism's
//! own) and, for Kerberos, when its ticket-granting ticket was issued.

use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::ptr;

use super::{
    describe, gss_delete_sec_context, gss_release_name, take_buffer, GssBufferDesc, GssCtx,
    GssName, GssOidDesc, OmUint32, GSS_ERROR_MASK,
};

#[repr(C)]
struct KeyValueElement {
    key: *const c_char,
    value: *const c_char,
}

#[repr(C)]
struct KeyValueSet {
    count: OmUint32,
    elements: *mut KeyValueElement,
}

type GssCred = *mut c_void;

#[link(name = "gssapi_krb5")]
extern "C" {
    fn gss_acquire_cred_from(
        minor: *mut OmUint32,
        name: GssName,
        time_req: OmUint32,
        mechs: *mut c_void,
        usage: i32,
        store: *mut KeyValueSet,
        cred: *mut GssCred,
        actual_mechs: *mut *mut c_void,
        time_rec: *mut OmUint32,
    ) -> OmUint32;
    fn gss_accept_sec_context(
        minor: *mut OmUint32,
        context: *mut GssCtx,
        cred: GssCred,
        input: *mut GssBufferDesc,
        bindings: *mut c_void,
        source: *mut GssName,
        mech: *mut *mut GssOidDesc,
        output: *mut GssBufferDesc,
        flags: *mut OmUint32,
        time_rec: *mut OmUint32,
        delegated: *mut GssCred,
    ) -> OmUint32;
    fn gss_display_name(
        minor: *mut OmUint32,
        name: GssName,
        output: *mut GssBufferDesc,
        name_type: *mut *mut GssOidDesc,
    ) -> OmUint32;
    fn gss_localname(
        minor: *mut OmUint32,
        name: GssName,
        mech: *mut GssOidDesc,
        output: *mut GssBufferDesc,
    ) -> OmUint32;
    fn gsskrb5_extract_authtime_from_sec_context(
        minor: *mut OmUint32,
        context: GssCtx,
        authtime: *mut i32,
    ) -> OmUint32;
    fn gss_release_cred(minor: *mut OmUint32, cred: *mut GssCred) -> OmUint32;
}

const GSS_C_ACCEPT: i32 = 2;
const GSS_S_CONTINUE_NEEDED: OmUint32 = 1;

/// Who the client proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedPeer {
    /// The principal as GSSAPI shows it (`alice@FERRO.TEST`).
    pub principal: String,
    /// Its local account name, when the mapping rules give one.
    pub local_name: Option<String>,
    /// When the client's Kerberos ticket-granting ticket was issued (Unix seconds); `None`
    /// for other mechanisms.
    pub auth_time: Option<i64>,
}

/// After a token from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptStep {
    /// Send this token back (`WWW-Authenticate: Negotiate ...`) and wait for the next.
    Continue(Vec<u8>),
    /// Done; the last token (often empty) goes back with the success.
    Complete { token: Vec<u8>, peer: AcceptedPeer },
}

/// One client's security context on the accepting side.
#[derive(Debug)]
pub struct Acceptor {
    cred: GssCred,
    context: GssCtx,
}

// SAFETY: the handles are used by one thread at a time (through `&mut self`), which
// GSSAPI allows for credentials and contexts moved between threads.
unsafe impl Send for Acceptor {}

impl Acceptor {
    /// Credentials for accepting: the service keys in `keytab`, or the default keytab.
    pub fn new(keytab: Option<&Path>) -> Result<Self, String> {
        let mut cred: GssCred = ptr::null_mut();
        let Some(keytab) = keytab else {
            return Ok(Self {
                cred,
                context: ptr::null_mut(),
            });
        };
        let key = CString::new("keytab").map_err(|e| e.to_string())?;
        let value = CString::new(keytab.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("keytab {} has a NUL in its name", keytab.display()))?;
        let mut element = KeyValueElement {
            key: key.as_ptr(),
            value: value.as_ptr(),
        };
        let mut store = KeyValueSet {
            count: 1,
            elements: &mut element,
        };
        let mut minor = 0;
        // SAFETY: the store points at live locals for the call; `cred` receives a handle
        // released in Drop; the NULLs ask for the default name and all mechanisms.
        let major = unsafe {
            gss_acquire_cred_from(
                &mut minor,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                GSS_C_ACCEPT,
                &mut store,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if major & GSS_ERROR_MASK != 0 {
            return Err(format!(
                "keytab {}: {}",
                keytab.display(),
                describe(major, minor)
            ));
        }
        Ok(Self {
            cred,
            context: ptr::null_mut(),
        })
    }

    /// One token from the client.
    pub fn step(&mut self, token: &[u8]) -> Result<AcceptStep, String> {
        let mut input = GssBufferDesc {
            length: token.len(),
            // GSSAPI only reads the input token.
            value: token.as_ptr().cast_mut().cast(),
        };
        let mut output = GssBufferDesc::empty();
        let mut source: GssName = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: every pointer is to a live local or a handle this acceptor owns, or NULL
        // where GSSAPI allows it; `output` and `source` are released below.
        let major = unsafe {
            gss_accept_sec_context(
                &mut minor,
                &mut self.context,
                self.cred,
                &mut input,
                ptr::null_mut(),
                &mut source,
                ptr::null_mut(),
                &mut output,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let answer = take_buffer(&mut output);
        let result = if major & GSS_ERROR_MASK != 0 {
            Err(describe(major, minor))
        } else if major & GSS_S_CONTINUE_NEEDED != 0 {
            Ok(AcceptStep::Continue(answer))
        } else {
            self.peer(source).map(|peer| AcceptStep::Complete {
                token: answer,
                peer,
            })
        };
        if !source.is_null() {
            // SAFETY: `source` is a name GSSAPI made for this call.
            unsafe { gss_release_name(&mut minor, &mut source) };
        }
        result
    }

    fn peer(&self, source: GssName) -> Result<AcceptedPeer, String> {
        let mut minor = 0;
        let mut shown = GssBufferDesc::empty();
        // SAFETY: `source` is the live name of this context's peer; `shown` is released
        // by take_buffer.
        let major = unsafe { gss_display_name(&mut minor, source, &mut shown, ptr::null_mut()) };
        let principal = String::from_utf8_lossy(&take_buffer(&mut shown)).into_owned();
        if major & GSS_ERROR_MASK != 0 || principal.is_empty() {
            return Err(format!(
                "no name for the client: {}",
                describe(major, minor)
            ));
        }
        let mut local = GssBufferDesc::empty();
        // SAFETY: as above; NULL asks for any mechanism's mapping.
        let major = unsafe { gss_localname(&mut minor, source, ptr::null_mut(), &mut local) };
        let local = String::from_utf8_lossy(&take_buffer(&mut local)).into_owned();
        let local_name = (major & GSS_ERROR_MASK == 0 && !local.is_empty()).then_some(local);
        let mut auth_time = 0i32;
        // SAFETY: the context is complete and owned here; `auth_time` is a live local.
        let major = unsafe {
            gsskrb5_extract_authtime_from_sec_context(&mut minor, self.context, &mut auth_time)
        };
        Ok(AcceptedPeer {
            principal,
            local_name,
            auth_time: (major & GSS_ERROR_MASK == 0).then_some(i64::from(auth_time)),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the handles were made by GSSAPI (or are NULL) and are released once.
        unsafe {
            if !self.context.is_null() {
                gss_delete_sec_context(&mut minor, &mut self.context, ptr::null_mut());
            }
            if !self.cred.is_null() {
                gss_release_cred(&mut minor, &mut self.cred);
            }
        }
    }
}
