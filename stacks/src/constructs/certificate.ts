// An ACM certificate for one name, validated through the deployment's DNS (Route53 or Cloudflare):
// the load balancer's (in the deployment's region) and the CDN's (CloudFront takes only us-east-1).
// A function, not a construct, so the resources keep the addresses they had in their scope.
import { Fn, Token, type TerraformProvider } from "cdktf";
import type { Construct } from "constructs";
import { AcmCertificate } from "@cdktf/provider-aws/lib/acm-certificate/index.js";
import { AcmCertificateValidation } from "@cdktf/provider-aws/lib/acm-certificate-validation/index.js";
import type { Dns } from "./dns.ts";

export interface ValidatedCertificateProps {
  readonly domain: string;
  readonly dns: Dns;
  /** Construct ids: the certificate, the wait for its issuance, and the validation record (under dns). */
  readonly ids: { readonly certificate: string; readonly validated: string; readonly record: string };
  /** Another region's provider (us-east-1 for CloudFront); default the stack's. */
  readonly provider?: TerraformProvider;
}

/** The ARN of the issued certificate: using it waits for validation. */
export function validatedCertificate(scope: Construct, props: ValidatedCertificateProps): string {
  const certificate = new AcmCertificate(scope, props.ids.certificate, {
    domainName: props.domain,
    validationMethod: "DNS",
    lifecycle: { createBeforeDestroy: true },
    ...(props.provider !== undefined && { provider: props.provider }),
  });
  // One domain, so one validation record; the options are a set, hence tolist before indexing.
  const option = Fn.element(Fn.tolist(certificate.domainValidationOptions), 0);
  const recordName = Token.asString(Fn.lookup(option, "resource_record_name", ""));
  const validationRecord = props.dns.validationRecord(props.ids.record, {
    name: recordName,
    type: Token.asString(Fn.lookup(option, "resource_record_type", "")),
    value: Token.asString(Fn.lookup(option, "resource_record_value", "")),
  });
  const validated = new AcmCertificateValidation(scope, props.ids.validated, {
    certificateArn: certificate.arn,
    validationRecordFqdns: [recordName],
    // Nothing else orders the wait for issuance after the record exists.
    dependsOn: [validationRecord],
    ...(props.provider !== undefined && { provider: props.provider }),
  });
  return validated.certificateArn;
}
