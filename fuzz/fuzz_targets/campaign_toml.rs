#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| faultline_fuzz_targets::campaign_toml(data));
