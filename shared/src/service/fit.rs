//! Keeping a function's answer within what Lambda can return.

use serde_json::Value;

/// Lambda's limit on a synchronous invocation's response: 6 MB (AWS Lambda quotas,
/// "Invocation payload (request and response)"). A larger answer is refused by the Runtime
/// API (413), and the invocation fails although the run itself finished.
pub const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

/// Room kept under the limit for the envelope (HTTP API headers, the truncation note).
const MARGIN: usize = 64 * 1024;

fn severity_rank(f: &Value) -> u8 {
    match f["severity"].as_str() {
        Some("critical") => 0,
        Some("high") => 1,
        Some("medium") => 2,
        _ => 3,
    }
}

/// `answer` as it is when its JSON fits in `limit` bytes; otherwise with the report's
/// findings (the answer itself, or its `report`) cut to the most severe that fit, and
/// `findings_omitted` (how many were left out) and `findings_note` (where the whole report
/// is) added beside them. The run, summary and changes are always kept.
pub fn fit_response(mut answer: Value, limit: usize) -> Value {
    let size = |v: &Value| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if size(&answer) <= limit {
        return answer;
    }
    let report = if answer.get("report").is_some_and(Value::is_object) {
        &mut answer["report"]
    } else {
        &mut answer
    };
    let Some(mut findings) = report.get_mut("findings").map(Value::take) else {
        return answer;
    };
    let mut all = match findings.as_array_mut() {
        Some(a) => std::mem::take(a),
        None => Vec::new(),
    };
    report["findings"] = Value::Array(Vec::new());
    let mut budget = limit.saturating_sub(size(&answer) + MARGIN);
    all.sort_by_key(severity_rank);
    let total = all.len();
    let mut kept = Vec::new();
    for f in all {
        let s = size(&f) + 1;
        if s > budget {
            break;
        }
        budget -= s;
        kept.push(f);
    }
    let omitted = total - kept.len();
    let report = if answer.get("report").is_some_and(Value::is_object) {
        &mut answer["report"]
    } else {
        &mut answer
    };
    report["findings"] = Value::Array(kept);
    report["findings_omitted"] = Value::from(omitted);
    report["findings_note"] = Value::from(format!(
        "{omitted} of {total} findings (the least severe) are left out to keep this answer under Lambda's {} MB response limit; \
         the whole report is in the state store (runs/ and reports/)",
        limit / (1024 * 1024)
    ));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(n: usize) -> Value {
        let findings: Vec<Value> = (0..n)
            .map(|i| {
                json!({"rule": "firewall.world-open", "severity": if i % 10 == 0 { "critical" } else { "medium" },
                       "status": "fail", "resource": {"type": "droplet", "id": i.to_string(), "name": "x".repeat(200)},
                       "detail": "y".repeat(300)})
            })
            .collect();
        json!({"run": {"id": "r"}, "summary": {"droplets": n}, "findings": findings, "changes": []})
    }

    #[test]
    fn a_small_answer_is_untouched() {
        let r = report(3);
        assert_eq!(fit_response(r.clone(), LAMBDA_RESPONSE_LIMIT), r);
    }

    #[test]
    fn a_large_report_keeps_the_most_severe_findings_and_says_so() {
        let r = report(20_000);
        assert!(serde_json::to_vec(&r).expect("json").len() > LAMBDA_RESPONSE_LIMIT);
        for wrapped in [r.clone(), json!({"action": "audit", "report": r})] {
            let out = fit_response(wrapped, LAMBDA_RESPONSE_LIMIT);
            assert!(serde_json::to_vec(&out).expect("json").len() <= LAMBDA_RESPONSE_LIMIT);
            let rep = out.get("report").unwrap_or(&out);
            let kept = rep["findings"].as_array().expect("findings");
            let omitted = rep["findings_omitted"].as_u64().expect("omitted") as usize;
            assert_eq!(kept.len() + omitted, 20_000);
            assert!(omitted > 0);
            // Every critical finding (2,000) is kept before any medium one.
            assert_eq!(
                kept.iter().filter(|f| f["severity"] == "critical").count(),
                2_000
            );
            assert_eq!(rep["summary"]["droplets"], 20_000);
            assert!(rep["findings_note"]
                .as_str()
                .expect("note")
                .contains("state store"));
        }
    }
}
