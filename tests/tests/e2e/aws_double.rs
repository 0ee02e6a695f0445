//! A small HTTP double that answers like STS and the Lambda API, for the paths
//! moto cannot produce: functions that stay Pending or InProgress, updates
//! refused with ResourceConflictException, function errors and throttling —
//! and a check that AssumeRole really carries the ExternalId (moto ignores it).
//! Everything else is tested against moto and AWS's RIE.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// How the double behaves; change it between commands.
#[derive(Debug, Default, Clone)]
pub struct Behaviour {
    /// GetFunction answers Pending / InProgress this many times after a change.
    pub pending_polls: u32,
    /// UpdateFunctionConfiguration answers ResourceConflictException this many times.
    pub conflicts: u32,
    /// Invoke answers 429 TooManyRequestsException this many times.
    pub throttles: u32,
    /// Accounts whose invocations end in a function error.
    pub failing_accounts: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    behaviour: Behaviour,
    /// Function configuration by account, once created.
    functions: HashMap<String, Value>,
    polls_left: u32,
    /// "METHOD path" of every request, in order.
    requests: Vec<String>,
    /// Form fields of every AssumeRole.
    assume_roles: Vec<HashMap<String, String>>,
}

pub struct AwsDouble {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl AwsDouble {
    pub fn start(behaviour: Behaviour) -> AwsDouble {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            behaviour,
            ..State::default()
        }));
        let shared = state.clone();
        // Serves until the test process ends; every test starts its own.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        AwsDouble { endpoint, state }
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = behaviour;
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    pub fn assume_roles(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().assume_roles.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let (status, extra, reply) = route(state, &method, &path, &headers, &body);
        let mut out = &stream;
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{extra}\r\n",
            reply.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(&reply))
            .is_err()
        {
            return;
        }
    }
}

/// The account of the caller: the double's own access keys end in it.
fn account(headers: &HashMap<String, String>) -> String {
    let auth = headers.get("authorization").cloned().unwrap_or_default();
    let key = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or_default();
    key.strip_prefix("ASIA")
        .unwrap_or("000000000000")
        .to_owned()
}

fn error(status: u16, kind: &str, message: &str) -> (u16, String, Vec<u8>) {
    (
        status,
        format!("x-amzn-errortype: {kind}\r\ncontent-type: application/json\r\n"),
        json!({"Type": "User", "message": message})
            .to_string()
            .into_bytes(),
    )
}

fn ok_json(status: u16, v: &Value) -> (u16, String, Vec<u8>) {
    (
        status,
        "content-type: application/json\r\n".into(),
        v.to_string().into_bytes(),
    )
}

fn route(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = state.lock().unwrap();
    s.requests.push(format!(
        "{method} {}",
        path.split('?').next().unwrap_or(path)
    ));
    let acct = account(headers);
    let segments: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    match (method, segments.as_slice()) {
        ("POST", [""]) => assume_role(&mut s, body),
        ("GET", ["2015-03-31", "functions", _name]) => {
            let Some(f) = s.functions.get(&acct).cloned() else {
                return error(404, "ResourceNotFoundException", "Function not found");
            };
            let mut f = f;
            if s.polls_left > 0 {
                s.polls_left -= 1;
                f["Configuration"]["State"] = json!("Pending");
                f["Configuration"]["LastUpdateStatus"] = json!("InProgress");
            }
            ok_json(200, &f)
        }
        ("POST", ["2015-03-31", "functions"]) => {
            let req: Value = serde_json::from_slice(body).unwrap_or_default();
            let f = json!({
                "Configuration": {
                    "FunctionName": req["FunctionName"], "FunctionArn": format!("arn:aws:lambda:us-east-1:{acct}:function:{}", req["FunctionName"].as_str().unwrap_or("")),
                    "Role": req["Role"], "MemorySize": req["MemorySize"], "Timeout": req["Timeout"], "EphemeralStorage": req["EphemeralStorage"],
                    "Environment": {"Variables": req["Environment"]["Variables"]}, "PackageType": "Image", "State": "Active", "LastUpdateStatus": "Successful"
                },
                "Code": {"ImageUri": req["Code"]["ImageUri"], "RepositoryType": "ECR"}
            });
            s.functions.insert(acct, f.clone());
            s.polls_left = s.behaviour.pending_polls;
            let mut c = f["Configuration"].clone();
            c["State"] = json!("Pending");
            ok_json(201, &c)
        }
        ("PUT", ["2015-03-31", "functions", _name, what]) => {
            if *what == "configuration" && s.behaviour.conflicts > 0 {
                s.behaviour.conflicts -= 1;
                return error(
                    409,
                    "ResourceConflictException",
                    "The operation cannot be performed at this time. An update is in progress for resource",
                );
            }
            let req: Value = serde_json::from_slice(body).unwrap_or_default();
            let pending = s.behaviour.pending_polls;
            let Some(f) = s.functions.get_mut(&acct) else {
                return error(404, "ResourceNotFoundException", "Function not found");
            };
            if *what == "code" {
                f["Code"]["ImageUri"] = req["ImageUri"].clone();
            } else {
                for k in ["Role", "MemorySize", "Timeout", "EphemeralStorage"] {
                    f["Configuration"][k] = req[k].clone();
                }
                f["Configuration"]["Environment"] =
                    json!({"Variables": req["Environment"]["Variables"]});
            }
            let c = f["Configuration"].clone();
            s.polls_left = pending;
            ok_json(200, &c)
        }
        ("POST", ["2015-03-31", "functions", _name, "invocations"]) => {
            if s.behaviour.throttles > 0 {
                s.behaviour.throttles -= 1;
                return error(429, "TooManyRequestsException", "Rate exceeded");
            }
            if s.behaviour.failing_accounts.contains(&acct) {
                let body = json!({"errorMessage": "boom in the runtime", "errorType": "Runtime.ExitError"});
                return (
                    200,
                    "x-amz-function-error: Unhandled\r\ncontent-type: application/json\r\n".into(),
                    body.to_string().into_bytes(),
                );
            }
            let result = json!({
                "execution_status": "SUCCEEDED", "exit_code": 0, "output": {"account": acct}, "log": "ran\n", "log_truncated": false,
                "bucket": null, "key": null, "log_key": null, "commit": "0".repeat(40), "request_id": "req-1",
                "timings_ms": {"clone": 1, "script": 2, "upload": 0, "total": 3}, "artifacts": [], "error": null
            });
            ok_json(200, &result)
        }
        _ => error(
            400,
            "InvalidRequestException",
            &format!("the double does not know {method} {path}"),
        ),
    }
}

fn assume_role(s: &mut State, body: &[u8]) -> (u16, String, Vec<u8>) {
    let form: HashMap<String, String> = url_decode_form(&String::from_utf8_lossy(body));
    let role = form.get("RoleArn").cloned().unwrap_or_default();
    let acct = role.split(':').nth(4).unwrap_or("000000000000").to_owned();
    s.assume_roles.push(form);
    let xml = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials>\
         <AccessKeyId>ASIA{acct}</AccessKeyId><SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken>\
         <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>\
         <Arn>{role}</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"
    );
    (200, "content-type: text/xml\r\n".into(), xml.into_bytes())
}

fn url_decode_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
