import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * cdk-nag (v3) acknowledgements. Each one names the exact finding and says why it is
 * acceptable; they are recorded on the construct, so a finding elsewhere is still reported.
 */
export function acknowledgeNag(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * The finding id cdk-nag reports for a wildcard in an IAM resource that contains a token,
 * e.g. `AwsSolutions-IAM5[Resource::<Table1234.Arn>/index/*]`: references are written as
 * `<LogicalId>` or `<LogicalId.Attribute>`.
 */
export function wildcardResourceFinding(scope: IConstruct, resource: string): string {
  return `AwsSolutions-IAM5[Resource::${flatten(Stack.of(scope).resolve(resource))}]`;
}

function flatten(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if (Array.isArray(v['Fn::Join'])) {
      const [delimiter, parts] = v['Fn::Join'] as [string, unknown[]];
      return parts.map(flatten).join(delimiter);
    }
    if (Array.isArray(v['Fn::GetAtt'])) {
      const [resource, attribute] = v['Fn::GetAtt'] as [unknown, unknown];
      return `<${flatten(resource)}.${flatten(attribute)}>`;
    }
    if ('Ref' in v) return `<${flatten(v.Ref)}>`;
  }
  return JSON.stringify(value);
}
