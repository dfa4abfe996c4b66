//! The messages between the server's processes (`oc_proto::ipc`), as each process reads
//! them: the first four bytes are a frame header, the rest a frame body.
//!
//! - `frame_len` accepts exactly the lengths 1..=MAX_FRAME.
//! - Every body decodes as each message type without panicking; a message that decodes
//!   passes its own checks, and encodes to a frame that decodes to the same message
//!   (the codec is a round trip, so nothing decoded is misread by the other side).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::ipc::{
    decode, encode, frame_len, CommandReply, MainReply, MainRequest, Message, SecModCommand,
    SecModReply, SecModRequest, WorkerCommand, FRAME_HEADER_LEN, MAX_FRAME,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T>(body: &[u8])
where
    T: Serialize + DeserializeOwned + Message + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = decode::<T>(body) {
        let frame = encode(&msg).expect("a decoded message encodes");
        let header: [u8; 4] = frame[..FRAME_HEADER_LEN - 1].try_into().unwrap();
        assert_eq!(frame_len(header), Ok(frame.len() - 4));
        assert_eq!(decode::<T>(&frame[4..]).as_ref(), Ok(&msg));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.get(..4) {
        let header: [u8; 4] = header.try_into().unwrap();
        let len = u32::from_be_bytes(header) as usize;
        assert_eq!(frame_len(header).is_ok(), (1..=MAX_FRAME).contains(&len));
    }
    let body = data.get(4..).unwrap_or_default();
    round_trip::<SecModRequest>(body);
    round_trip::<SecModReply>(body);
    round_trip::<MainRequest>(body);
    round_trip::<MainReply>(body);
    round_trip::<WorkerCommand>(body);
    round_trip::<SecModCommand>(body);
    round_trip::<CommandReply>(body);
});
