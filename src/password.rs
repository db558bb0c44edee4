//! Temporary passwords and random tokens from the operating system's CSPRNG, and Argon2id
//! hashes (the only form in which a password is stored).

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use rand::rngs::OsRng;
use std::sync::Mutex;

/// No 0/O, 1/l/I: a person copies these from an email.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// A 16-character temporary password (about 92 bits) with an upper-case letter, a lower-case
/// letter and a digit. Active Directory's default policy ("passwords must meet complexity
/// requirements") wants three of the four character classes: about one random 16-character
/// token in eleven has no digit and was refused by a real (Samba) domain controller. Drawing
/// again until all three are there keeps every acceptable password equally likely.
pub fn temporary() -> String {
    loop {
        let t = token(16);
        if t.bytes().any(|b| b.is_ascii_uppercase())
            && t.bytes().any(|b| b.is_ascii_lowercase())
            && t.bytes().any(|b| b.is_ascii_digit())
        {
            return t;
        }
    }
}

/// `len` random characters from [`ALPHABET`].
pub fn token(len: usize) -> String {
    from_alphabet(ALPHABET, len)
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 letters), with bytes from
/// the operating system's CSPRNG read a buffer at a time: one system call per buffer, where
/// drawing a character at a time cost one per character (13 per request processed, for a
/// reply's Message-ID alone). A byte is kept only below the largest multiple of the
/// alphabet's length (rejection sampling), so every character is equally likely.
pub fn from_alphabet(alphabet: &[u8], len: usize) -> String {
    let n = alphabet.len();
    if n == 0 || n > 256 {
        return String::new();
    }
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut made = 0;
    // A little more than `len`: about one byte in nine is rejected for 57 letters.
    let mut buf = vec![0u8; len + len / 2 + 8];
    while made < len {
        OsRng.fill_bytes(&mut buf);
        for b in buf.iter().map(|b| usize::from(*b)).filter(|b| *b < limit) {
            if made == len {
                break;
            }
            if let Some(c) = alphabet.get(b % n) {
                out.push(char::from(*c));
                made += 1;
            }
        }
    }
    out
}

/// Argon2's working memory (the default parameters use 19 MiB), reused rather than allocated
/// per hash. Allocated per hash, glibc kept every freed 19 MiB block and did not reuse it: the
/// staff page's resident memory grew by 19 MiB with *every* password check, bounded or not
/// (issue 13; `benches/signin_burst.rs`). A hash takes a buffer from here (or makes one) and
/// puts it back zeroed; at most [`POOLED`] are kept.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// As many as the staff page checks at once (`web::auth::MAX_CONCURRENT_CHECKS`).
const POOLED: usize = 4;

fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let mut memory = MEMORY
        .lock()
        .ok()
        .and_then(|mut pool| pool.pop())
        .unwrap_or_default();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let out = f(&mut memory);
    // What Argon2 leaves there is derived from the password.
    memory.fill(Block::default());
    if let Ok(mut pool) = MEMORY.lock()
        && pool.len() < POOLED
    {
        pool.push(memory);
    }
    out
}

pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let argon = Argon2::default();
    let params = argon.params().clone();
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| format!("cannot hash password: {e}"))?;
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    with_memory(params.block_count(), |m| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, m)
    })
    .map_err(|e| format!("cannot hash password: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params)
            .map_err(|e| format!("cannot hash password: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| format!("cannot hash password: {e}"))?),
    };
    Ok(phc.to_string())
}

pub fn verify(password: &str, hash: &str) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(phc.algorithm),
        phc.version.map(Version::try_from).transpose(),
        Params::try_from(&phc),
    ) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
    let mut out = vec![0u8; expected.len()];
    let computed = with_memory(params.block_count(), |m| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, m)
    });
    // `Output`'s comparison is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_passwords_meet_a_directory_complexity_policy() {
        // Three of four classes (Active Directory's default): upper, lower and digit, every
        // time. 2,000 draws would miss a digit about 180 times without the redraw.
        for _ in 0..2000 {
            let p = temporary();
            assert_eq!(p.len(), 16);
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()), "{p}");
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()), "{p}");
            assert!(p.bytes().any(|b| b.is_ascii_digit()), "{p}");
        }
    }

    #[test]
    fn drawn_characters_are_all_the_alphabets_and_equally_likely() {
        // 57 letters, 570,000 draws: 10,000 expected each (σ ≈ 99). A byte taken modulo 57
        // without rejection gives the first 28 letters 5/256 of the draws and the others
        // 4/256 (about 11,130 against 8,910), outside the bounds below; a fair draw leaves
        // them only six standard deviations out.
        let drawn = from_alphabet(ALPHABET, 570_000);
        assert_eq!(drawn.len(), 570_000);
        let mut counts = std::collections::HashMap::new();
        for b in drawn.bytes() {
            assert!(ALPHABET.contains(&b), "{b} is not in the alphabet");
            *counts.entry(b).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), ALPHABET.len());
        for (b, n) in counts {
            assert!(
                (9_400..=10_600).contains(&n),
                "{} drawn {n} times",
                char::from(b)
            );
        }
        assert_eq!(from_alphabet(b"AB", 0), "");
        assert_eq!(from_alphabet(b"", 5), "");
        assert_eq!(from_alphabet(b"Z", 3), "ZZZ");
    }

    #[test]
    fn hashes_verify_and_tokens_differ() {
        let pw = temporary();
        assert_eq!(pw.len(), 16);
        assert_ne!(pw, temporary());
        let h = hash(&pw).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&pw, &h));
        assert!(!verify("wrong", &h));
        assert!(!verify(&pw, "not a hash"));
    }

    #[test]
    fn argon2_memory_is_reused_and_kept_bounded() {
        let h = hash("a passphrase").unwrap();
        // Eight checks at once need eight buffers; afterwards at most POOLED stay, zeroed.
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || verify("a passphrase", &h))
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        let pool = MEMORY.lock().unwrap();
        // (Other tests may hold some of them right now: no lower bound.)
        assert!(pool.len() <= POOLED, "{}", pool.len());
        assert!(
            pool.iter()
                .all(|m| m.iter().all(|b| b.as_ref().iter().all(|x| *x == 0)))
        );
    }

    #[test]
    fn hashes_are_the_librarys_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mine = hash("a passphrase").unwrap();
        let parsed = PasswordHash::new(&mine).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"a passphrase", &parsed)
                .is_ok()
        );
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = Argon2::default()
            .hash_password(b"a passphrase", &salt)
            .unwrap()
            .to_string();
        assert!(verify("a passphrase", &theirs));
        assert!(!verify("a passphrase!", &theirs));
        // Other parameters (an older or stronger hash) verify too.
        let strong = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 3, 1, None).unwrap(),
        )
        .hash_password(b"x", &salt)
        .unwrap()
        .to_string();
        assert!(verify("x", &strong) && !verify("y", &strong));
    }
}
