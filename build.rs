// `sqlx::migrate!` embeds the migration files at compile time; without this, adding a new
// migration file does not trigger a rebuild and the binary silently lacks it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
