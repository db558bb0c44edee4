//! A national directory, generated (issue 18): organisations of realistic sizes (most are
//! small practices, some are large trusts), shared mailboxes with 1–200 members each, accounts
//! with names as people have them and addresses as a national service gives them
//! (`first.last`, then `first.last2`, …). Deterministic for a seed.
//!
//! Used by `benches/national.rs`; its names are those of `benches/resolve.rs`.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::Write;

pub const DOMAIN: &str = "nhs.bench";

pub const FIRST: [&str; 48] = [
    "Ravi",
    "Fatima",
    "Joe",
    "Hannah",
    "Chloë",
    "Siobhan",
    "Mary-Jane",
    "Tomasz",
    "Aisha",
    "Owen",
    "Emma",
    "Mohammed",
    "Priya",
    "Lucy",
    "Mark",
    "Grace",
    "Daniel",
    "Zoë",
    "Kwame",
    "Sophie",
    "Oliver",
    "Amelia",
    "Jack",
    "Isla",
    "Harry",
    "Ava",
    "George",
    "Mia",
    "Noah",
    "Ella",
    "Leo",
    "Lily",
    "Arthur",
    "Freya",
    "Oscar",
    "Ivy",
    "Theo",
    "Rosie",
    "Finley",
    "Esther",
    "Wei",
    "Olumide",
    "Niamh",
    "Rhys",
    "Agnieszka",
    "Sanjay",
    "Bethan",
    "Yusuf",
];
pub const LAST: [&str; 48] = [
    "Gupta",
    "Ali",
    "Bloggs",
    "Moss",
    "Brontë",
    "O'Neill",
    "Smith",
    "Nowak",
    "Khan",
    "Davies",
    "Clarke",
    "Iqbal",
    "Sharma",
    "Brown",
    "Dunn",
    "Jones",
    "Taylor",
    "Wilson",
    "Evans",
    "Thomas",
    "Johnson",
    "Roberts",
    "Walker",
    "Wright",
    "Robinson",
    "Thompson",
    "White",
    "Hughes",
    "Edwards",
    "Green",
    "Hall",
    "Wood",
    "Harris",
    "Lewis",
    "Martin",
    "Jackson",
    "Clark",
    "Turner",
    "Hill",
    "Scott",
    "Okafor",
    "Chen",
    "Patel",
    "Murphy",
    "Kowalski",
    "Begum",
    "Llewellyn",
    "Adeyemi",
];
const TOWNS: [&str; 24] = [
    "Leeds",
    "Bristol",
    "Truro",
    "Carlisle",
    "Norwich",
    "Derby",
    "Hull",
    "Exeter",
    "York",
    "Luton",
    "Bolton",
    "Wigan",
    "Oxford",
    "Ipswich",
    "Preston",
    "Swindon",
    "Reading",
    "Stockport",
    "Sunderland",
    "Wakefield",
    "Lincoln",
    "Salford",
    "Dudley",
    "Hereford",
];
const SMALL: [&str; 4] = ["Medical Practice", "Surgery", "Pharmacy", "Dental Care"];
const LARGE: [&str; 3] = [
    "Teaching Hospitals NHS Trust",
    "Community Health NHS Trust",
    "Integrated Care Board",
];
const FUNCTIONS: [&str; 10] = [
    "reception",
    "admin",
    "referrals",
    "rota",
    "pharmacy",
    "finance",
    "outpatients",
    "secretaries",
    "governance",
    "it",
];

pub struct Account {
    pub address: String,
    pub name: String,
    pub org: u32,
    pub status: &'static str,
}

pub struct Mailbox {
    pub address: String,
    pub org: u32,
    /// Owners first (one or two), then members; indices into `Directory::accounts`.
    pub owners: Vec<u32>,
    pub members: Vec<u32>,
}

pub struct Organisation {
    pub name: String,
    /// Its accounts: `accounts[first..first + size]`.
    pub first: usize,
    pub size: usize,
}

pub struct Directory {
    pub organisations: Vec<Organisation>,
    pub accounts: Vec<Account>,
    pub mailboxes: Vec<Mailbox>,
}

/// Members besides the owners: 70 % of mailboxes have 1–10, 25 % 11–50, 5 % 51–200 (about
/// 18 on average), never more than the organisation has.
fn mailbox_size(rng: &mut impl Rng) -> usize {
    let u: f64 = rng.r#gen();
    if u < 0.70 {
        rng.gen_range(1..=10)
    } else if u < 0.95 {
        rng.gen_range(11..=50)
    } else {
        rng.gen_range(51..=200)
    }
}

/// Accounts in one organisation: 80 % small (5–60: practices, pharmacies), 18 % medium
/// (100–2,000), 2 % large trusts (3,000–20,000); about 450 on average.
fn organisation_size(rng: &mut impl Rng) -> usize {
    let u: f64 = rng.r#gen();
    if u < 0.80 {
        rng.gen_range(5..=60)
    } else if u < 0.98 {
        rng.gen_range(100..=2_000)
    } else {
        rng.gen_range(3_000..=20_000)
    }
}

fn ascii_slug(s: &str) -> String {
    deunicode::deunicode(s)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// About `accounts` accounts and `mailboxes` shared mailboxes (both at least 1).
pub fn generate(accounts: usize, mailboxes: usize, seed: u64) -> Directory {
    let accounts = accounts.max(1);
    let mailboxes = mailboxes.max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut d = Directory {
        organisations: Vec::new(),
        accounts: Vec::with_capacity(accounts),
        mailboxes: Vec::with_capacity(mailboxes),
    };
    let mut taken: HashMap<(usize, usize), u32> = HashMap::new();
    while d.accounts.len() < accounts {
        let org = d.organisations.len() as u32;
        let size = organisation_size(&mut rng).min(accounts - d.accounts.len());
        let town = TOWNS[rng.gen_range(0..TOWNS.len())];
        let kind = if size > 1_000 {
            LARGE[rng.gen_range(0..LARGE.len())]
        } else {
            SMALL[rng.gen_range(0..SMALL.len())]
        };
        // An ODS-like code keeps names unique, as the real ones are.
        let name = format!(
            "{town} {kind} ({}{:05})",
            (b'A' + (org % 26) as u8) as char,
            org
        );
        let first = d.accounts.len();
        for _ in 0..size {
            let (f, l) = (rng.gen_range(0..FIRST.len()), rng.gen_range(0..LAST.len()));
            let n = taken.entry((f, l)).or_insert(0);
            *n += 1;
            let suffix = if *n == 1 {
                String::new()
            } else {
                n.to_string()
            };
            let u: f64 = rng.r#gen();
            let status = if u < 0.02 {
                "locked"
            } else if u < 0.025 {
                "disabled"
            } else {
                "active"
            };
            d.accounts.push(Account {
                address: format!(
                    "{}.{}{suffix}@{DOMAIN}",
                    ascii_slug(FIRST[f]),
                    ascii_slug(LAST[l])
                ),
                name: format!("{} {}", FIRST[f], LAST[l]),
                org,
                status,
            });
        }
        d.organisations.push(Organisation { name, first, size });
    }
    // Mailboxes in proportion to each organisation's size, at least one each when there are
    // enough to go round.
    let total = d.accounts.len() as f64;
    let per_account = mailboxes as f64 / total;
    for (o, org) in d.organisations.iter().enumerate() {
        let want = ((org.size as f64 * per_account).round() as usize).max(1);
        let slug = format!(
            "{}{:05}",
            ascii_slug(&org.name[..org.name.find(' ').unwrap_or(0)]),
            o
        );
        for j in 0..want {
            if d.mailboxes.len() >= mailboxes {
                break;
            }
            let members = mailbox_size(&mut rng);
            let owners = if org.size > 1 && rng.gen_bool(0.3) {
                2
            } else {
                1
            };
            let n = (members + owners).min(org.size);
            let picked: Vec<u32> = sample(&mut rng, org.size, n)
                .into_iter()
                .map(|i| (org.first + i) as u32)
                .collect();
            let owners = owners.min(picked.len());
            let function = FUNCTIONS[j % FUNCTIONS.len()];
            d.mailboxes.push(Mailbox {
                address: format!("{slug}.{function}{}@{DOMAIN}", j / FUNCTIONS.len()),
                org: o as u32,
                owners: picked[..owners].to_vec(),
                members: picked[owners..].to_vec(),
            });
        }
    }
    d
}

impl Directory {
    /// Write it as `directory import` reads it: one row per membership, then one row for each
    /// account in no mailbox. Returns the number of rows.
    pub fn write_csv(&self, out: impl Write) -> std::io::Result<usize> {
        let mut w = std::io::BufWriter::new(out);
        writeln!(w, "organisation,mailbox,account,name,role,status")?;
        let mut rows = 0;
        let mut in_a_mailbox = vec![false; self.accounts.len()];
        for m in &self.mailboxes {
            let org = &self.organisations[m.org as usize].name;
            let roles = m
                .owners
                .iter()
                .map(|a| (a, "owner"))
                .chain(m.members.iter().map(|a| (a, "member")));
            for (a, role) in roles {
                let acc = &self.accounts[*a as usize];
                in_a_mailbox[*a as usize] = true;
                writeln!(
                    w,
                    "\"{org}\",{},{},\"{}\",{role},{}",
                    m.address, acc.address, acc.name, acc.status
                )?;
                rows += 1;
            }
        }
        for (i, acc) in self.accounts.iter().enumerate() {
            if !in_a_mailbox[i] {
                let org = &self.organisations[acc.org as usize].name;
                writeln!(
                    w,
                    "\"{org}\",,{},\"{}\",,{}",
                    acc.address, acc.name, acc.status
                )?;
                rows += 1;
            }
        }
        w.flush()?;
        Ok(rows)
    }

    pub fn memberships(&self) -> usize {
        self.mailboxes
            .iter()
            .map(|m| m.owners.len() + m.members.len())
            .sum()
    }
}
