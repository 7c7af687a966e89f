// The hosts' root file systems hold the Nix store and the upload spool; a full one fails every push.
// Each host publishes its root file system's usage (aws-host.nix, every 5 minutes) under the
// deployment's and its mode's name, so one alarm per mode covers every instance of it, the
// auto-scaling group's included, without knowing instance ids.
import { Construct } from "constructs";
import { CloudwatchMetricAlarm } from "@cdktf/provider-aws/lib/cloudwatch-metric-alarm/index.js";
import { SnsTopic } from "@cdktf/provider-aws/lib/sns-topic/index.js";
import { SnsTopicSubscription } from "@cdktf/provider-aws/lib/sns-topic-subscription/index.js";
import type { HostMode } from "../user-data.ts";

/** The metric aws-host.nix publishes: percent of the root file system in use. */
export const DISK_METRIC = { name: "RootDiskUsedPercent", dimensions: ["Deployment", "Mode"] } as const;

export interface DiskAlarmProps {
  readonly deploymentName: string;
  readonly namespace: string;
  readonly modes: readonly HostMode[];
  readonly thresholdPercent: number;
  readonly email: string | undefined;
}

export class DiskAlarm extends Construct {
  readonly topic: SnsTopic;
  readonly alarms: CloudwatchMetricAlarm[];

  constructor(scope: Construct, id: string, props: DiskAlarmProps) {
    super(scope, id);
    const name = `larder-${props.deploymentName}`;
    // Not encrypted with the AWS-managed SNS key: CloudWatch cannot publish to a topic under it (it
    // would need a customer key whose policy admits cloudwatch.amazonaws.com). Alarms carry no secret.
    this.topic = new SnsTopic(this, "topic", { namePrefix: `${name}-alarms-` });
    if (props.email !== undefined) {
      // AWS mails a confirmation link first; nothing is delivered until it is clicked.
      new SnsTopicSubscription(this, "email", { topicArn: this.topic.arn, protocol: "email", endpoint: props.email });
    }
    this.alarms = props.modes.map(
      (mode) =>
        new CloudwatchMetricAlarm(this, `disk-${mode}`, {
          alarmName: `${name}-${mode}-root-disk`,
          alarmDescription: `A ${mode} host's root file system (Nix store and upload spool) is over ${props.thresholdPercent}% full. See docs/AWS.md, "Disk".`,
          namespace: props.namespace,
          metricName: DISK_METRIC.name,
          dimensions: { Deployment: props.deploymentName, Mode: mode },
          // Maximum over every instance reporting under these dimensions: the fullest host decides.
          statistic: "Maximum",
          period: 300,
          evaluationPeriods: 2,
          threshold: props.thresholdPercent,
          comparisonOperator: "GreaterThanThreshold",
          // No data means no host reports (not yet booted, or the publisher broke): shown as
          // INSUFFICIENT_DATA, which the alarm's own notification covers.
          treatMissingData: "missing",
          alarmActions: [this.topic.arn],
          okActions: [this.topic.arn],
          insufficientDataActions: [this.topic.arn],
        }),
    );
  }
}
