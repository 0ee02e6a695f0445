//! `pyexec policies`: the IAM documents a target account's role needs (from
//! the product's onboarding guide), filled in and ready for
//! `aws iam put-role-policy` / `update-assume-role-policy`.

use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{DEFAULT_FUNCTION_NAME, check_account_id, check_external_id};
use crate::error::Error;

#[derive(Debug, Clone, Args)]
pub struct PoliciesArgs {
    /// The account that assumes the target role (where pyexec runs from).
    #[arg(long)]
    pub host_account: String,
    /// The ExternalId the trust relationship requires.
    #[arg(long)]
    pub external_id: String,
    /// Account of the roles passed to Lambda (default: the host account, as in
    /// the onboarding guide).
    #[arg(long)]
    pub target_account: Option<String>,
    /// Name of the target role, for the printed commands.
    #[arg(long, default_value = "PyexecAssumeRole")]
    pub role_name: String,
    /// Also write each document to DIR/<name>.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Policies {
    /// AWS managed policies to attach to the role.
    pub managed_policies: Vec<String>,
    /// Inline policies by name.
    pub inline_policies: serde_json::Map<String, Value>,
    /// The role's trust relationship.
    pub trust_policy: Value,
    /// The role `pyexec schedule create` makes (pyexec-scheduler-<function>):
    /// its trust, and its one permission.
    pub scheduler_trust_policy: Value,
    pub scheduler_invoke_policy: Value,
    /// The commands that apply them.
    pub commands: Vec<String>,
}

pub const PASS_ROLE: &str = "PassRoleToLambdaServiceForTargetAccount";
pub const ONBOARD: &str = "OnboardSpotUserPolicyForTargetAccount";
pub const SECRETS: &str = "PyexecReadGitTokens";
pub const SCHEDULES: &str = "PyexecManageSchedules";
pub const ECR: &str = "ECR-Related-Policy-For-Spot-ConnectForTargetAccount";

/// Trust of the role EventBridge Scheduler assumes to run a schedule:
/// scheduler.amazonaws.com, on behalf of `account` only.
pub fn scheduler_trust_policy(account: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}}
    }]})
}

/// What that role may do: invoke the function (any version or alias of it)
/// and nothing else.
pub fn scheduler_invoke_policy(function_arn: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "lambda:InvokeFunction",
        "Resource": [function_arn, format!("{function_arn}:*")]
    }]})
}

pub fn policies(args: &PoliciesArgs) -> Result<Policies, Error> {
    let bad = |flag: &'static str| move |reason: String| Error::Usage { flag, reason };
    check_account_id(&args.host_account).map_err(bad("--host-account"))?;
    check_external_id(&args.external_id).map_err(bad("--external-id"))?;
    let passed_account = args.target_account.as_deref().unwrap_or(&args.host_account);
    check_account_id(passed_account).map_err(bad("--target-account"))?;

    let mut inline = serde_json::Map::new();
    inline.insert(
        PASS_ROLE.into(),
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "PassRoleToLambda",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": format!("arn:aws:iam::{passed_account}:role/*AssumeRole*"),
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
        }]}),
    );
    inline.insert(
        ONBOARD.into(),
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": [
                "s3:GetObject", "iam:GetRole", "iam:GetPolicy", "iam:DeletePolicy", "iam:CreateRole", "iam:DeleteRole",
                "iam:AttachRolePolicy", "iam:CreatePolicy", "iam:DetachRolePolicy", "iam:ListPolicyVersions",
                "iam:DeleteRolePolicy", "iam:UpdateRole", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion",
                "cloudformation:CreateStackInstances", "cloudformation:CreateStackSet"
            ],
            "Resource": "*"
        }]}),
    );
    inline.insert(
        ECR.into(),
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "PullImages", "Effect": "Allow", "Action": [
                "ecr:DescribeImageScanFindings", "ecr:GetLifecyclePolicyPreview", "ecr:GetDownloadUrlForLayer",
                "ecr:DescribeImageReplicationStatus", "ecr:ListTagsForResource", "ecr:ListImages",
                "ecr:BatchGetRepositoryScanningConfiguration", "ecr:BatchGetImage", "ecr:DescribeImages",
                "ecr:DescribeRepositories", "ecr:BatchCheckLayerAvailability", "ecr:GetRepositoryPolicy", "ecr:GetLifecyclePolicy"
            ], "Resource": "*"},
            {"Sid": "Registry", "Effect": "Allow", "Action": [
                "ecr:GetRegistryPolicy", "ecr:DescribeRegistry", "ecr:DescribePullThroughCacheRules",
                "ecr:GetAuthorizationToken", "ecr:GetRegistryScanningConfiguration"
            ], "Resource": "*"}
        ]}),
    );
    // The target role is also the function's execution role by default: it
    // resolves token_ref and writes results.
    inline.insert(
        SECRETS.into(),
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadGitTokens", "Effect": "Allow", "Action": ["ssm:GetParameter", "secretsmanager:GetSecretValue"], "Resource": [
                format!("arn:aws:ssm:*:{passed_account}:parameter/pyexec/*"),
                format!("arn:aws:secretsmanager:*:{passed_account}:secret:pyexec/*")
            ]},
            {"Sid": "DecryptThem", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"StringLike": {"kms:ViaService": ["ssm.*.amazonaws.com", "secretsmanager.*.amazonaws.com"]}}}
        ]}),
    );
    inline.insert(
        SCHEDULES.into(),
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ManageSchedules", "Effect": "Allow", "Action": [
                "scheduler:CreateSchedule", "scheduler:GetSchedule", "scheduler:ListSchedules", "scheduler:DeleteSchedule", "scheduler:CreateScheduleGroup"
            ], "Resource": "*"},
            {"Sid": "SchedulerRole", "Effect": "Allow", "Action": ["iam:CreateRole", "iam:GetRole", "iam:PutRolePolicy"],
             "Resource": format!("arn:aws:iam::{passed_account}:role/pyexec-scheduler-*")},
            {"Sid": "PassSchedulerRole", "Effect": "Allow", "Action": "iam:PassRole",
             "Resource": format!("arn:aws:iam::{passed_account}:role/pyexec-scheduler-*"),
             "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}}
        ]}),
    );
    let scheduler_trust_policy = scheduler_trust_policy(passed_account);
    let scheduler_invoke_policy = scheduler_invoke_policy(&format!(
        "arn:aws:lambda:*:{passed_account}:function:{DEFAULT_FUNCTION_NAME}"
    ));
    let trust_policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "HostAccount", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", args.host_account)},
         "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": args.external_id}}},
        {"Sid": "LambdaService", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]});
    let managed_policies = vec!["arn:aws:iam::aws:policy/AWSLambda_FullAccess".to_owned()];
    let role = &args.role_name;
    let mut commands = vec![format!(
        "aws iam attach-role-policy --role-name {role} --policy-arn {}",
        managed_policies[0]
    )];
    for name in inline.keys() {
        commands.push(format!("aws iam put-role-policy --role-name {role} --policy-name {name} --policy-document file://{name}.json"));
    }
    commands.push(format!("aws iam update-assume-role-policy --role-name {role} --policy-document file://trust-policy.json"));
    Ok(Policies {
        managed_policies,
        inline_policies: inline,
        trust_policy,
        scheduler_trust_policy,
        scheduler_invoke_policy,
        commands,
    })
}

/// Write each document to `dir` under the names the commands use.
pub fn write_files(p: &Policies, dir: &std::path::Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
    let docs = p
        .inline_policies
        .iter()
        .map(|(k, v)| (format!("{k}.json"), v))
        .chain([("trust-policy.json".to_owned(), &p.trust_policy)]);
    for (name, doc) in docs {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(doc)?)
            .map_err(Error::io("cannot write", &path))?;
    }
    Ok(())
}

/// Text for a person: each document under its name, then the commands.
pub fn render(p: &Policies) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "# Managed policy to attach\n{}\n\n",
        p.managed_policies.join("\n")
    ));
    for (name, doc) in &p.inline_policies {
        s.push_str(&format!(
            "# Inline policy {name}\n{}\n\n",
            serde_json::to_string_pretty(doc).unwrap_or_default()
        ));
    }
    s.push_str(&format!(
        "# Trust relationship\n{}\n\n",
        serde_json::to_string_pretty(&p.trust_policy).unwrap_or_default()
    ));
    s.push_str(&format!(
        "# The scheduler's role (created by `pyexec schedule create`)\n# trust:\n{}\n# permission:\n{}\n\n",
        serde_json::to_string_pretty(&p.scheduler_trust_policy).unwrap_or_default(),
        serde_json::to_string_pretty(&p.scheduler_invoke_policy).unwrap_or_default()
    ));
    s.push_str("# Apply (with --out DIR, the files are in DIR)\n");
    for c in &p.commands {
        s.push_str(c);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(host: &str, ext: &str) -> PoliciesArgs {
        PoliciesArgs {
            host_account: host.into(),
            external_id: ext.into(),
            target_account: None,
            role_name: "R".into(),
            out: None,
        }
    }

    #[test]
    fn filled_in_documents() {
        let p = policies(&args("123456789012", "ext-42")).unwrap();
        assert_eq!(
            p.trust_policy["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::123456789012:root"
        );
        assert_eq!(
            p.trust_policy["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "ext-42"
        );
        assert_eq!(
            p.trust_policy["Statement"][1]["Principal"]["Service"],
            "lambda.amazonaws.com"
        );
        assert_eq!(
            p.inline_policies[PASS_ROLE]["Statement"][0]["Resource"],
            "arn:aws:iam::123456789012:role/*AssumeRole*"
        );
        assert_eq!(
            p.inline_policies[SECRETS]["Statement"][0]["Action"],
            json!(["ssm:GetParameter", "secretsmanager:GetSecretValue"])
        );
        assert_eq!(
            p.scheduler_trust_policy["Statement"][0]["Principal"]["Service"],
            "scheduler.amazonaws.com"
        );
        assert!(p.commands.iter().any(|c| c.contains(
            "put-role-policy --role-name R --policy-name PassRoleToLambdaServiceForTargetAccount"
        )));
    }

    #[test]
    fn bounds_are_checked() {
        let e = policies(&args("12345", "ext-42")).unwrap_err().to_string();
        assert!(
            e.contains("--host-account") && e.contains("12 digits"),
            "{e}"
        );
        let e = policies(&args("123456789012", "x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--external-id") && e.contains("2-1224"), "{e}");
    }
}
