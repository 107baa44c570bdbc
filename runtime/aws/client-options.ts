/**
 * The settings Kanmon's own AWS clients (SNS, KMS, Secrets Manager) take from their options,
 * turned into the SDK client configuration the same way for each: only what was given, so
 * that the SDK's own resolution (AWS_REGION, the task role) applies to the rest.
 */
export interface AwsClientSettings<Credentials extends object> {
  /** Already resolved by the caller (an explicit option, or the region in the resource's ARN). */
  readonly region?: string | undefined;
  /** Another endpoint than the service's regional one (VPC endpoint DNS name, tests). */
  readonly endpoint?: string | undefined;
  /** Static credentials or a provider function. @default the AWS SDK's default chain */
  readonly credentials?: Credentials | undefined;
}

export function awsClientOptions<Credentials extends object>(settings: AwsClientSettings<Credentials>): { region?: string; endpoint?: string; credentials?: Credentials } {
  const { region, endpoint, credentials } = settings;
  return {
    ...(region ? { region } : {}),
    ...(endpoint ? { endpoint } : {}),
    // A copy: the SDK annotates a static credentials object, which may be frozen.
    ...(credentials ? { credentials: typeof credentials === 'function' ? credentials : { ...credentials } } : {}),
  };
}
