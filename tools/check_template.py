#!/usr/bin/env python3
"""Holds template.yaml's monitoring to the metrics the function writes.

- The dashboard body is valid JSON once CloudFormation substitutes its variables, and every widget has a
  place on the grid.
- Every metric of the function's namespace that the dashboard or an alarm reads is one the metrics
  table of docs/operating.md lists (that table is itself held to src/aws/metrics.rs by a Rust test),
  under a dimension set the table gives it.
- The rollout is wired: an alias, a deployment preference whose alarms are the error-rate and latency
  alarms, and every API integration, permission and output calling the alias rather than the function.
- The batch path is wired and least-privilege: the queue's event source mapping reports batch item
  failures and caps its concurrency, the queue has a dead-letter queue with an alarm, the bucket
  notifies only under InputPrefix, and the batch function may only read under InputPrefix and write
  under OutputPrefix (no wildcard action or bucket-wide resource).
- The HTTP function reads S3 objects for requests only in RequestImageBucket, and only when it is set,
  and gets the image_url settings.

    tools/check_template.py [template.yaml] [docs/operating.md]
"""
import json
import re
import sys

from cfnlint.decode import decode

NAMESPACE_PARAMETER = "MetricsNamespace"


def readme_metrics(readme_path):
    """{metric name: [dimension set, ...]} from the metrics table of docs/operating.md."""
    text = open(readme_path, encoding="utf-8").read()
    section = text.split("\n## Operating it\n", 1)[1]
    lines = section.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("| metric |"))
    metrics = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].strip("`")
        sets = []
        for dims in cells[2].split(";"):
            dims = dims.replace("(opt-in)", "").strip()
            sets.append(frozenset(d.strip() for d in dims.split(",")))
        metrics[name] = sets
    return metrics


def substitute(template_text):
    """The text of an Fn::Sub with every ${...} replaced by a plausible value."""
    samples = {NAMESPACE_PARAMETER: "ObjectDetector", "AWS::Region": "us-east-1"}

    def value(m):
        name = m.group(1)
        if name in samples:
            return samples[name]
        if name.endswith(".Arn"):
            return "arn:aws:cloudwatch:us-east-1:123456789012:alarm:" + name[:-4]
        return "sample-" + re.sub(r"[^A-Za-z0-9]", "-", name)

    return re.sub(r"\$\{([^}]+)\}", value, template_text)


def fail(message):
    sys.exit(f"check_template: {message}")


def check_dashboard(resources, metrics):
    body = resources["Dashboard"]["Properties"]["DashboardBody"]
    if not isinstance(body, dict) or "Fn::Sub" not in body:
        fail("DashboardBody is expected as !Sub text")
    try:
        dashboard = json.loads(substitute(body["Fn::Sub"]))
    except ValueError as e:
        fail(f"the dashboard body is not JSON after substitution: {e}")
    used = 0
    for widget in dashboard["widgets"]:
        for key in ("type", "x", "y", "width", "height", "properties"):
            if key not in widget:
                fail(f"a widget lacks {key}: {widget}")
        if widget["x"] + widget["width"] > 24:
            fail(f"a widget leaves the 24-column grid: {widget['properties'].get('title')}")
        for row in widget["properties"].get("metrics", []):
            for item in row:
                expression = item.get("expression", "") if isinstance(item, dict) else ""
                for schema, name in re.findall(
                    r"SEARCH\('\{([^}]*)\} MetricName=\"([^\"]+)\"'", expression
                ):
                    parts = [p.strip().strip('"') for p in schema.split(",")]
                    if parts[0] != "ObjectDetector":
                        fail(f"a search outside the function's namespace: {expression}")
                    check_metric(metrics, name, frozenset(parts[1:]), "dashboard")
                    used += 1
    if used == 0:
        fail("the dashboard reads none of the function's metrics")
    return used


def check_metric(metrics, name, dimensions, where):
    if name not in metrics:
        fail(f"{where} reads {name}, which the function does not write (docs/operating.md's metrics table)")
    if dimensions not in metrics[name]:
        fail(f"{where} reads {name} by {sorted(dimensions)}; the function writes it by "
             f"{[sorted(s) for s in metrics[name]]}")


def is_namespace_ref(value):
    return value == {"Ref": NAMESPACE_PARAMETER}


def check_alarms(resources, metrics):
    checked = 0
    for name, resource in resources.items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        stats = [props] if "MetricName" in props else [
            m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m
        ]
        for stat in stats:
            if is_namespace_ref(stat["Namespace"]):
                dims = frozenset(d["Name"] for d in stat.get("Dimensions", []))
                check_metric(metrics, stat["MetricName"], dims, f"alarm {name}")
                checked += 1
        if "TreatMissingData" not in props:
            fail(f"alarm {name} leaves missing data to the default")
    return checked


def check_rollout(resources):
    function = resources["DetectorFunction"]["Properties"]
    if function.get("AutoPublishAlias") != "live":
        fail("DetectorFunction publishes no `live` alias")
    alarms = function.get("DeploymentPreference", {}).get("Alarms", [])
    if {json.dumps(a) for a in alarms} != {json.dumps({"Ref": "ErrorRateAlarm"}), json.dumps({"Ref": "LatencyAlarm"})}:
        fail(f"the deployment preference must roll back on ErrorRateAlarm and LatencyAlarm, has {alarms}")
    text = json.dumps(resources)
    if "DetectorFunction.Arn" in text or '"Fn::GetAtt": ["DetectorFunction", "Arn"]' in text:
        fail("something calls the function itself rather than its `live` alias")
    for name in ("RestApiPermission", "HttpApiPermission"):
        if resources[name]["Properties"]["FunctionName"] != {"Ref": "DetectorFunction.Alias"}:
            fail(f"{name} does not let the API call the alias")


def check_batch(resources):
    function = resources["BatchFunction"]["Properties"]
    event = function["Events"]["Photos"]["Properties"]
    if function["Events"]["Photos"]["Type"] != "SQS" or event["Queue"] != {"Fn::GetAtt": ["PhotoQueue", "Arn"]}:
        fail("BatchFunction is not fed by PhotoQueue")
    if event.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
        fail("the queue's event source mapping does not take partial batch responses")
    if "MaximumConcurrency" not in event.get("ScalingConfig", {}):
        fail("the queue's event source mapping has no MaximumConcurrency")
    redrive = resources["PhotoQueue"]["Properties"].get("RedrivePolicy", {})
    if redrive.get("deadLetterTargetArn") != {"Fn::GetAtt": ["PhotoDeadLetterQueue", "Arn"]}:
        fail("PhotoQueue has no dead-letter queue")
    dlq_alarm = resources["DeadLetterAlarm"]["Properties"]
    if dlq_alarm["Dimensions"][0]["Value"] != {"Fn::GetAtt": ["PhotoDeadLetterQueue", "QueueName"]}:
        fail("no alarm watches the dead-letter queue")
    rules = resources["InputBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"][0][
        "Filter"]["S3Key"]["Rules"]
    if rules != [{"Name": "prefix", "Value": {"Ref": "InputPrefix"}}]:
        fail("the bucket notifies outside InputPrefix")
    variables = function["Environment"]["Variables"]
    if variables.get("INPUT_PREFIX") != {"Ref": "InputPrefix"} or variables.get("OUTPUT_PREFIX") != {
            "Ref": "OutputPrefix"}:
        fail("BatchFunction does not know InputPrefix and OutputPrefix (its loop guard)")
    grants = {}
    for policy in function["Policies"]:
        for statement in policy.get("Statement", []):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resource = json.dumps(statement["Resource"])
            for action in actions:
                if "*" in action:
                    fail(f"BatchFunction has a wildcard action {action}")
                grants[action] = resource
    if sorted(grants) != ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]:
        fail(f"BatchFunction's S3 grants are {sorted(grants)}, not exactly read and write of objects")
    for action, prefix in (("s3:GetObject", "${InputPrefix}*"), ("s3:GetObjectVersion", "${InputPrefix}*"),
                           ("s3:PutObject", "${OutputPrefix}*")):
        if f"/{prefix}" not in grants[action]:
            fail(f"BatchFunction's {action} is not limited to {prefix}: {grants[action]}")


def check_request_inputs(resources):
    """The HTTP function reads S3 only when RequestImageBucket names a bucket, only objects in it, and
    knows the image_url settings."""
    function = resources["DetectorFunction"]["Properties"]
    policies = function.get("Policies", [])
    if len(policies) != 1 or "Fn::If" not in policies[0]:
        fail("DetectorFunction's policies are not one statement conditional on RequestImageBucket")
    condition, granted, otherwise = policies[0]["Fn::If"]
    if condition != "HasRequestImageBucket" or otherwise != {"Ref": "AWS::NoValue"}:
        fail("DetectorFunction's S3 read is not off without RequestImageBucket")
    for statement in granted["Statement"]:
        if sorted(statement["Action"]) != ["s3:GetObject", "s3:GetObjectVersion"]:
            fail(f"DetectorFunction may do more than read objects: {statement['Action']}")
        if statement["Resource"] != {"Fn::Sub": "arn:${AWS::Partition}:s3:::${RequestImageBucket}/*"}:
            fail(f"DetectorFunction reads beyond RequestImageBucket: {statement['Resource']}")
    variables = function["Environment"]["Variables"]
    if variables.get("IMAGE_URL") != {"Ref": "ImageUrlInput"} or variables.get("IMAGE_URL_HOSTS") != {
            "Ref": "ImageUrlHosts"}:
        fail("DetectorFunction does not get ImageUrlInput and ImageUrlHosts")


def main():
    template_path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    readme_path = sys.argv[2] if len(sys.argv) > 2 else "docs/operating.md"
    template, errors = decode(template_path)
    if errors:
        fail(f"{template_path} does not parse: {errors}")
    resources = template["Resources"]
    metrics = readme_metrics(readme_path)
    searches = check_dashboard(resources, metrics)
    alarm_metrics = check_alarms(resources, metrics)
    check_rollout(resources)
    check_batch(resources)
    check_request_inputs(resources)
    outputs = json.dumps(template["Outputs"]["FunctionArn"])
    if "DetectorFunction.Alias" not in outputs:
        fail("the FunctionArn output is not the alias")
    print(
        f"check_template: dashboard ({searches} metric searches) and alarms ({alarm_metrics} metrics of "
        f"the function) read what the function writes; rollout wired to the `live` alias; batch path wired, least privilege; "
        f"requests read S3 only in RequestImageBucket"
    )


if __name__ == "__main__":
    main()
