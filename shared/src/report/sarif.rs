//! SARIF 2.1.0: one run, the rule catalogue as the driver's rules, one result per finding with
//! the resource (a Droplet, firewall or the account) as its location.

use serde_json::{json, Value};

use super::{Report, ResourceType, Severity, Status};
use crate::catalog::RULES;

fn level(sev: Severity) -> &'static str {
    match sev {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

fn security_severity(sev: Severity) -> &'static str {
    match sev {
        Severity::Critical => "9.5",
        Severity::High => "7.5",
        Severity::Medium => "5.0",
        Severity::Low => "2.5",
    }
}

fn console_uri(kind: ResourceType, id: &str) -> String {
    match kind {
        ResourceType::Droplet => format!("https://cloud.digitalocean.com/droplets/{id}"),
        ResourceType::Firewall => {
            format!("https://cloud.digitalocean.com/networking/firewalls/{id}")
        }
        ResourceType::Vpc => format!("https://cloud.digitalocean.com/networking/vpc/{id}"),
        ResourceType::Account => "https://cloud.digitalocean.com/account/security".to_string(),
    }
}

/// A rule of the catalogue as a SARIF `reportingDescriptor`.
fn rule_descriptor(r: &crate::catalog::RuleInfo) -> Value {
    json!({
        "id": r.id,
        "name": r.id.replace(['.', '-'], "_"),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.help},
        "help": {"text": r.help, "markdown": format!("**{}**\n\n{}", r.title, r.help)},
        "defaultConfiguration": {"level": level(r.severity)},
        "properties": {
            "security-severity": security_severity(r.severity),
            "tags": ["security", "digitalocean"],
            "needs-ssh": r.needs_ssh
        }
    })
}

/// A finding as a SARIF `result`.
fn result(f: &crate::report::Finding) -> Value {
    let rule_index = RULES.iter().position(|r| r.id == f.rule).unwrap_or(0);
    let (kind, lvl) = match f.status {
        Status::Fail | Status::Exempt => ("fail", level(f.severity)),
        Status::Unknown => ("open", "none"),
    };
    let fq = format!("{}/{}", f.resource.kind.as_str(), f.resource.id);
    let mut result = json!({
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "kind": kind,
        "level": lvl,
        "message": {"text": format!("{} {} ({}): {}", f.resource.kind.as_str(), f.resource.name, f.resource.id, f.detail)},
        "locations": [{
            "physicalLocation": {"artifactLocation": {"uri": console_uri(f.resource.kind, &f.resource.id)}},
            "logicalLocations": [{
                "name": f.resource.name,
                "fullyQualifiedName": fq,
                "kind": "resource"
            }]
        }],
        "partialFingerprints": {"dropletguard/v1": format!("{}:{}", f.rule, fq)},
        "properties": {
            "status": f.status.as_str(),
            "severity": f.severity.as_str(),
            "security-severity": security_severity(f.severity),
            "remediation": f.remediation,
            "first_seen": f.first_seen
        }
    });
    if let Some(e) = &f.exemption {
        result["suppressions"] = suppressions(e);
    }
    result
}

/// The report as a SARIF 2.1.0 log (one run; the rule catalogue as the driver's rules; one
/// result per finding, exempted ones with a `suppressions` entry).
pub fn to_sarif(report: &Report) -> Value {
    let rules: Vec<Value> = RULES.iter().map(rule_descriptor).collect();
    let results: Vec<Value> = report.findings.iter().map(result).collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "dropletguard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/dropletguard/dropletguard",
                "rules": rules
            }},
            "automationDetails": {"id": format!("dropletguard/{}/{}", report.run.trigger, report.run.id)},
            "invocations": [{
                "executionSuccessful": report.run.complete,
                "startTimeUtc": report.run.started_at,
                "endTimeUtc": report.run.finished_at
            }],
            "results": results,
            "properties": {"summary": report.summary, "api_requests": report.run.api_requests}
        }]
    })
}

/// An exempted finding's SARIF `suppressions`: decided outside the code (`external`), accepted,
/// with the exemption's reason as the justification.
fn suppressions(e: &crate::report::ExemptionRef) -> Value {
    json!([{
        "kind": "external",
        "status": "accepted",
        "justification": e.reason,
        "properties": {"owner": e.owner, "expires": e.expires}
    }])
}
