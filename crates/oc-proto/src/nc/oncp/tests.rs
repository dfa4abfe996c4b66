//! oNCP's framing, read back from what the other side writes, however it is cut.

use super::*;

/// Everything a decoder hands out, as owned values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Hello(Vec<u8>),
    Status(u8),
    Packet(Vec<u8>),
    Message(u16, Vec<u8>),
    Terminated(u8),
}

fn decode_in(decoder: &mut OncpDecoder, wire: &[u8], cut: usize) -> (Vec<Got>, Option<NcError>) {
    let mut got = Vec::new();
    for chunk in wire.chunks(cut.max(1)) {
        let result = decoder.decode(chunk, |event| {
            got.push(match event {
                OncpEvent::Hello(h) => Got::Hello(h.to_vec()),
                OncpEvent::Status(s) => Got::Status(s),
                OncpEvent::Packet(p) => Got::Packet(p.to_vec()),
                OncpEvent::Message { kind, payload } => Got::Message(kind, payload.to_vec()),
                OncpEvent::Terminated(r) => Got::Terminated(r),
            });
            Ok::<_, NcError>(())
        });
        if let Err(e) = result {
            return (got, Some(e));
        }
    }
    (got, None)
}

fn v4(len: u16, fill: u8) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.resize(usize::from(len), fill);
    p
}

#[test]
fn a_servers_stream_reads_the_same_however_it_is_cut() {
    let (a, b, c) = (v4(24, 1), v4(1400, 2), v4(60, 3));
    // The status byte shares its record with the configuration's first bytes; the
    // configuration then spans records; a KMP 300 holds two packets; another is split
    // across records; the session ends.
    let config = message(KMP_CONFIG, &[7; 300]).unwrap();
    let two = message(KMP_DATA, &[a.clone(), b.clone()].concat()).unwrap();
    let one = message(KMP_DATA, &c).unwrap();
    let mut stream = vec![STATUS_OK];
    stream.extend_from_slice(&config);
    stream.extend_from_slice(&two);
    stream.extend_from_slice(&one);
    let mut wire = Vec::new();
    for chunk in stream.chunks(333) {
        wire.extend_from_slice(&record(chunk));
    }
    wire.extend_from_slice(&termination(1));
    wire.extend_from_slice(&data_record(&a).unwrap());
    let expected = vec![
        Got::Status(STATUS_OK),
        Got::Message(KMP_CONFIG, vec![7; 300]),
        Got::Packet(a),
        Got::Packet(b),
        Got::Packet(c),
        Got::Terminated(1),
    ];
    for cut in [1, 2, 3, 7, 333, 335, wire.len()] {
        let (got, error) = decode_in(&mut OncpDecoder::client(), &wire, cut);
        assert_eq!((got, error), (expected.clone(), None), "cut {cut}");
    }
}

#[test]
fn a_clients_stream_starts_with_its_hello() {
    let hello = hostname_packet("laptop");
    assert_eq!(&hello[..2], &(hello.len() as u16 - 2).to_le_bytes());
    let packet = v4(20, 9);
    let wire = [hello.clone(), data_record(&packet).unwrap()].concat();
    for cut in [1, 5, wire.len()] {
        let (got, _) = decode_in(&mut OncpDecoder::server(), &wire, cut);
        assert_eq!(
            got,
            vec![Got::Hello(hello[2..].to_vec()), Got::Packet(packet.clone())]
        );
    }
    assert_eq!(
        parse_hostname_packet(&hello[2..]).as_deref(),
        Some("laptop")
    );
    assert_eq!(parse_hostname_packet(&hello[3..]), None);
    assert_eq!(parse_hostname_packet(&[]), None);
    let long = hostname_packet(&"h".repeat(5000));
    assert_eq!(
        parse_hostname_packet(&long[2..]).unwrap().len(),
        MAX_HOSTNAME
    );
}

#[test]
fn bad_data_packets_end_the_stream() {
    let mut decoder = OncpDecoder::client();
    let bad = message(KMP_DATA, &[0x45, 0, 0, 99, 1]).unwrap();
    let wire = [
        status_record(0),
        record(&bad),
        data_record(&v4(20, 1)).unwrap(),
    ]
    .concat();
    let (got, error) = decode_in(&mut decoder, &wire, wire.len());
    assert_eq!(got, vec![Got::Status(0)]);
    assert_eq!(error, Some(NcError::BadDataPacket(5)));
    // Nothing more is read after the error.
    let (got, error) = decode_in(&mut decoder, &data_record(&v4(20, 1)).unwrap(), 100);
    assert_eq!((got, error), (vec![], None));
}

#[test]
fn data_packets_split_by_their_ip_lengths() {
    let a = v4(24, 7);
    let mut v6 = vec![0x60, 0, 0, 0, 0, 4];
    v6.resize(44, 9);
    let payload = [a.clone(), v6.clone()].concat();
    let split: Result<Vec<_>, _> = data_packets(&payload).collect();
    assert_eq!(split.unwrap(), vec![&a[..], &v6[..]]);
    let bad = |p: &[u8]| data_packets(p).any(|r| r.is_err());
    assert!(bad(&[0x45, 0, 0, 99, 1]), "longer than the rest");
    assert!(bad(&[0x45, 0, 0, 0]), "zero length");
    assert!(bad(&[0x45, 0, 0, 1]), "shorter than its own header");
    assert!(bad(&[0x12]));
    assert_eq!(data_packets(&[]).count(), 0);
}

#[test]
fn packets_are_framed_in_place() {
    let packet = v4(100, 4);
    let mut buf = vec![0xee; DATA_HEADROOM];
    buf.extend_from_slice(&packet);
    let frame = frame_in_place(&mut buf).unwrap().to_vec();
    assert_eq!(frame, data_record(&packet).unwrap());
    let header = KmpHeader::parse(&frame[RECORD_HEADER_LEN..]).unwrap();
    assert_eq!((header.kind, header.len), (KMP_DATA, 100));
    let mut huge = vec![0; DATA_HEADROOM + MAX_DATA_PACKET + 1];
    assert_eq!(
        frame_in_place(&mut huge),
        Err(NcError::TooLong(MAX_DATA_PACKET + 1))
    );
    let mut most = vec![0; DATA_HEADROOM + MAX_DATA_PACKET];
    assert!(frame_in_place(&mut most).is_ok());
    assert!(frame_in_place(&mut [0; 3]).is_err());
}

#[test]
fn the_stream_holds_at_most_one_message() {
    let mut decoder = OncpDecoder::client();
    let mut wire = status_record(0);
    // A message that says 65535 bytes, sent 60000 at a time in records.
    let mut head = KmpHeader::emit(KMP_CONFIG, u16::MAX.into())
        .unwrap()
        .to_vec();
    head.resize(60000, 0);
    wire.extend_from_slice(&record(&head));
    let (got, _) = decode_in(&mut decoder, &wire, wire.len());
    assert_eq!(got, vec![Got::Status(0)]);
    assert!(decoder.stream.len() <= KMP_HEADER_LEN + usize::from(u16::MAX));
    let rest = vec![0; KMP_HEADER_LEN + usize::from(u16::MAX) - 60000];
    let (got, _) = decode_in(&mut decoder, &record(&rest), 4096);
    assert!(matches!(&got[..], [Got::Message(KMP_CONFIG, p)] if p.len() == 65535));
    assert!(decoder.stream.is_empty());
}

#[test]
fn a_packet_put_in_the_middle_of_the_configuration_comes_out_on_its_own() {
    // The configuration spans two records; between them the server sends a record that
    // is a whole KMP 300 (its tail all zeros, as servers write it) with a Legacy IP packet.
    let config = message(KMP_CONFIG, &[7; 600]).unwrap();
    let packet = v4(60, 9);
    let mut interjected = vec![0u8; KMP_HEADER_LEN];
    interjected[6..8].copy_from_slice(&KMP_DATA.to_be_bytes());
    interjected[18..20].copy_from_slice(&60u16.to_be_bytes());
    interjected.extend_from_slice(&packet);
    let (first, second) = config.split_at(300);
    let mut wire = record(&[&[STATUS_OK][..], first].concat());
    wire.extend_from_slice(&record(&interjected));
    wire.extend_from_slice(&record(second));
    let expected = vec![
        Got::Status(STATUS_OK),
        Got::Packet(packet),
        Got::Message(KMP_CONFIG, vec![7; 600]),
    ];
    for cut in [1, 2, 5, 77, 301, wire.len()] {
        let (got, error) = decode_in(&mut OncpDecoder::client(), &wire, cut);
        assert_eq!((got, error), (expected.clone(), None), "cut {cut}");
    }
}
