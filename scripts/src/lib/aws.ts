import type { EC2Client } from "@aws-sdk/client-ec2";
import { fail } from "./errors.ts";

/** Resolves credentials up front, so a missing login is one clear line rather than an SDK trace. */
export async function verifyAwsCredentials(ec2: EC2Client): Promise<void> {
  try {
    await ec2.config.credentials();
  } catch {
    fail("no AWS credentials found: set AWS_PROFILE (after `aws sso login`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
  }
}
