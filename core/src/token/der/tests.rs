//! meshgate's DER writer against the `rsa` and curve crates' encoders, byte for byte.

use p256::pkcs8::EncodePublicKey as _;
use rand::RngCore as _;
use rsa::BigUint;

use super::*;
use crate::token::jwks::{rsa_material, RsaKeyError};

fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// An odd modulus of `bits` bits (not a product of primes: the encoders don't care).
fn modulus(bits: usize) -> Vec<u8> {
    let mut n = random(bits.div_ceil(8));
    let top = bits % 8;
    n[0] = if top == 0 {
        n[0] | 0x80
    } else {
        (n[0] | 1 << (top - 1)) & ((1 << top) - 1)
    };
    *n.last_mut().unwrap() |= 1;
    n
}

#[test]
fn rsa_spki_matches_the_rsa_crate() {
    let e65537 = [0x01, 0x00, 0x01];
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("2048 bits, e=65537", modulus(2048), e65537.to_vec()),
        ("2048 bits, e=3", modulus(2048), vec![3]),
        ("4096 bits", modulus(4096), e65537.to_vec()),
        (
            "2047 bits: top bit of the first byte clear",
            modulus(2047),
            e65537.to_vec(),
        ),
        ("3072 bits", modulus(3072), e65537.to_vec()),
        (
            "n and e with leading zero bytes",
            [&[0, 0][..], &modulus(2048)].concat(),
            vec![0, 1, 0, 1],
        ),
        (
            "e with its top bit set (0x80 0x01)",
            modulus(2048),
            vec![0x80, 0x01],
        ),
    ];
    for (name, n, e) in cases {
        let reference =
            rsa::RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
                .unwrap()
                .to_public_key_der()
                .unwrap();
        assert_eq!(rsa_public_key_der(&n, &e), reference.as_bytes(), "{name}");
        let (_, der) = rsa_material(&n, &e).unwrap();
        assert_eq!(der, reference.as_bytes(), "{name}");
    }
}

#[test]
fn integers_are_minimal_and_non_negative() {
    let cases: [(&[u8], &[u8]); 6] = [
        (&[], &[0x02, 0x01, 0x00]),
        (&[0, 0], &[0x02, 0x01, 0x00]),
        (&[0x7f], &[0x02, 0x01, 0x7f]),
        (&[0x80], &[0x02, 0x02, 0x00, 0x80]),
        (&[0, 0x80], &[0x02, 0x02, 0x00, 0x80]),
        (&[0x01, 0x00, 0x01], &[0x02, 0x03, 0x01, 0x00, 0x01]),
    ];
    for (input, expected) in cases {
        assert_eq!(unsigned_integer(input), expected, "{input:02x?}");
    }
    // Long form lengths: 1 and 2 length bytes.
    assert_eq!(element(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
    assert_eq!(element(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
}

/// Name, n, e, and how meshgate refuses the key.
type RsaCase = (&'static str, Vec<u8>, Vec<u8>, Option<RsaKeyError>);

#[test]
fn rsa_keys_are_refused_as_the_rsa_crate_refuses_them() {
    let n = modulus(2048);
    let mut even_n = n.clone();
    *even_n.last_mut().unwrap() &= 0xfe;
    let cases: Vec<RsaCase> = vec![
        ("good", n.clone(), vec![1, 0, 1], None),
        ("e=3", n.clone(), vec![3], None),
        (
            "largest e",
            n.clone(),
            vec![0x01, 0xff, 0xff, 0xff, 0xff],
            None,
        ),
        ("4096 bits", modulus(4096), vec![1, 0, 1], None),
        (
            "4097 bits",
            modulus(4097),
            vec![1, 0, 1],
            Some(RsaKeyError::ModulusTooLarge),
        ),
        (
            "e of 9 bytes",
            n.clone(),
            vec![1; 9],
            Some(RsaKeyError::ExponentTooLarge),
        ),
        (
            "even n",
            even_n,
            vec![1, 0, 1],
            Some(RsaKeyError::InvalidModulus),
        ),
        (
            "e = n: longer than 8 bytes first",
            n.clone(),
            n.clone(),
            Some(RsaKeyError::ExponentTooLarge),
        ),
        (
            "e > n (tiny n)",
            vec![0x0f],
            vec![0x11],
            Some(RsaKeyError::InvalidModulus),
        ),
        (
            "e = n (tiny n)",
            vec![0x11],
            vec![0x11],
            Some(RsaKeyError::InvalidModulus),
        ),
        (
            "even e",
            n.clone(),
            vec![1, 0, 0],
            Some(RsaKeyError::InvalidExponent),
        ),
        (
            "e = 0",
            n.clone(),
            vec![0],
            Some(RsaKeyError::InvalidExponent),
        ),
        (
            "e = 1",
            n.clone(),
            vec![1],
            Some(RsaKeyError::ExponentTooSmall),
        ),
        (
            "e = 2^33 + 1",
            n.clone(),
            vec![0x02, 0, 0, 0, 1],
            Some(RsaKeyError::ExponentTooLarge),
        ),
    ];
    for (name, n, e, expected) in cases {
        let ours = rsa_material(&n, &e).err();
        assert_eq!(ours, expected, "{name}");
        let reference =
            rsa::RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e));
        assert_eq!(ours.is_none(), reference.is_ok(), "{name}: {reference:?}");
        if let Some(expected) = expected {
            assert_eq!(
                expected.to_string(),
                reference.unwrap_err().to_string(),
                "{name}"
            );
        }
    }
}

#[test]
fn ec_spki_matches_the_curve_crates() {
    for _ in 0..8 {
        let mut rng = rand::thread_rng();
        let cases = [
            (Curve::P256, {
                let key = p256::SecretKey::random(&mut rng).public_key();
                (
                    key.to_sec1_bytes().to_vec(),
                    key.to_public_key_der().unwrap(),
                )
            }),
            (Curve::P384, {
                let key = p384::SecretKey::random(&mut rng).public_key();
                (
                    key.to_sec1_bytes().to_vec(),
                    key.to_public_key_der().unwrap(),
                )
            }),
            (Curve::P521, {
                let key = p521::SecretKey::random(&mut rng).public_key();
                (
                    key.to_sec1_bytes().to_vec(),
                    key.to_public_key_der().unwrap(),
                )
            }),
        ];
        for (curve, (point, reference)) in cases {
            assert_eq!(point.len(), 1 + 2 * curve.size(), "{curve:?}: uncompressed");
            assert_eq!(
                ec_public_key_der(curve, &point),
                reference.as_bytes(),
                "{curve:?}"
            );
        }
    }
}

/// The curve crates' DER form of a raw `r ‖ s`, or `None` when they refuse it.
fn reference_signature(curve: Curve, raw: &[u8]) -> Option<Vec<u8>> {
    match curve {
        Curve::P256 => p256::ecdsa::Signature::from_slice(raw)
            .ok()
            .map(|s| s.to_der().as_bytes().to_vec()),
        Curve::P384 => p384::ecdsa::Signature::from_slice(raw)
            .ok()
            .map(|s| s.to_der().as_bytes().to_vec()),
        Curve::P521 => p521::ecdsa::Signature::from_slice(raw)
            .ok()
            .map(|s| s.to_der().as_bytes().to_vec()),
    }
}

#[test]
fn ecdsa_signatures_match_the_curve_crates() {
    for (alg, curve) in [
        (Algorithm::Es256, Curve::P256),
        (Algorithm::Es384, Curve::P384),
        (Algorithm::Es512, Curve::P521),
    ] {
        let size = curve.size();
        let order = curve.order().to_vec();
        let mut order_minus_one = order.clone();
        *order_minus_one.last_mut().unwrap() -= 1;
        let mut order_plus_one = order.clone();
        *order_plus_one.last_mut().unwrap() += 1;
        let mut one = vec![0; size];
        *one.last_mut().unwrap() = 1;
        let mut small = random(size);
        small[..size / 2].fill(0);
        let mut top_bit = random(size);
        top_bit[0] = 0x80 & order[0];
        top_bit[1] = 0;
        let scalars = [
            ("0", vec![0; size]),
            ("1", one),
            ("n-1", order_minus_one),
            ("n", order),
            ("n+1", order_plus_one),
            ("all ff", vec![0xff; size]),
            ("leading zeros", small),
            ("top bit set, below n", top_bit),
            ("random", random(size)),
        ];
        for (r_name, r) in &scalars {
            for (s_name, s) in &scalars {
                let raw = [r.as_slice(), s].concat();
                assert_eq!(
                    ecdsa_signature_der(alg, &raw).ok(),
                    reference_signature(curve, &raw),
                    "{curve:?} r={r_name} s={s_name}"
                );
            }
        }
    }
}

#[test]
fn curve_names_and_oids_round_trip() {
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        assert_eq!(Curve::from_oid(curve.oid()), Some(curve));
    }
    assert_eq!(Curve::from_oid(EC_PUBLIC_KEY_OID), None);
    assert_eq!(Curve::from_jwk_name("P-256K"), None);
}
