//! The secrets hot paths: sealing and opening one parameter value (every save and
//! every step execution), and redacting a function's output with the step's values.
//! Target: seal and open of a 100-byte value at or under 2 µs each.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use trellis::secrets::{self, Binding, Keyring, Redactor, SecretString};

const BINDING: Binding<'static> = Binding {
    orchestration_id: "0b7c9d2e-8f4a-4c1e-9a57-3d2b6e1f0a98",
    step_id: "provision-repo",
    param: "API_KEY",
};

fn keyring() -> Keyring {
    Keyring::from_json(&Keyring::generate_json()).expect("generated keyring parses")
}

fn seal_open(c: &mut Criterion) {
    let keyring = keyring();
    let value = "sk_live_".to_owned() + &"x7Q".repeat(30) + "ab"; // 100 bytes
    assert_eq!(value.len(), 100);
    c.bench_function("seal 100-byte value", |b| {
        b.iter(|| secrets::seal(&keyring, black_box(&BINDING), black_box(&value)))
    });
    let (blob, version) = secrets::seal(&keyring, &BINDING, &value);
    c.bench_function("open 100-byte value", |b| {
        b.iter(|| secrets::open(&keyring, black_box(&BINDING), version, black_box(&blob)).expect("opens"))
    });
}

fn redact(c: &mut Criterion) {
    let values: Vec<SecretString> = (0..10)
        .map(|i| SecretString::new(format!("sk_live_{i:02}_{}", "Zq8vR2".repeat(5))))
        .collect();
    // A JSON output of 64 KiB: ordinary records, three of which echo a secret.
    let mut records = Vec::new();
    let mut len = 0;
    while len < 64 << 10 {
        let i = records.len();
        let note = match i {
            10 => format!("token {}", values[1].expose()),
            200 => format!("Bearer {}", values[7].expose()),
            400 => values[9].expose().to_owned(),
            _ => format!("record {i} processed without incident, status ok"),
        };
        let record = serde_json::json!({ "id": i, "name": format!("item-{i}"), "note": note });
        len += record.to_string().len() + 1;
        records.push(record);
    }
    let text = serde_json::json!({ "records": records }).to_string();
    let clean = text.replace("sk_live_", "sk_test_");
    let redactor = Redactor::new(&values);

    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("redact 64 KiB output with 10 secrets", |b| {
        b.iter(|| redactor.redact_json_text(black_box(&text)))
    });
    group.bench_function("redact 64 KiB output with 10 secrets, none echoed", |b| {
        b.iter(|| redactor.redact_json_text(black_box(&clean)))
    });
    group.finish();

    c.bench_function("build redactor for 10 secrets", |b| {
        b.iter(|| Redactor::new(black_box(&values)))
    });
}

criterion_group!(benches, seal_open, redact);
criterion_main!(benches);
