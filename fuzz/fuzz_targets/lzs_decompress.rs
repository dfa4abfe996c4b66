//! Arbitrary bytes into the LZS decoder with openconnect's 16 KiB bound. Whatever decodes
//! must encode again (within LZS's worst-case expansion) and decode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::compress::{lzs, MIN_DECOMPRESS_LIMIT};

fuzz_target!(|data: &[u8]| {
    let mut out = vec![0u8; MIN_DECOMPRESS_LIMIT];
    let Ok(n) = lzs::decompress(data, &mut out) else {
        return;
    };
    assert!(n <= out.len());
    let plain = &out[..n];

    // Worst case: 9 bits per literal, a 9-bit end marker and padding.
    let mut packed = vec![0u8; n + n / 8 + 4];
    let m = lzs::Compressor::new()
        .compress(plain, &mut packed)
        .unwrap_or_else(|| {
            panic!(
                "{n} decoded bytes do not re-encode in {} bytes",
                packed.len()
            )
        });
    let mut again = vec![0u8; MIN_DECOMPRESS_LIMIT];
    let k = lzs::decompress(&packed[..m], &mut again)
        .unwrap_or_else(|e| panic!("re-encoded block does not decode: {e}"));
    assert_eq!(&again[..k], plain, "LZS round trip changed the data");
});
