fn main() {
    // The cdylib is a drop-in for Spread 5's client library, so it carries its SONAME.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libspread.so.3");
}
