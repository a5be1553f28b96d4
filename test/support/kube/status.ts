/** metav1.Status bodies, shaped like the ones kube-apiserver writes. */

export type StatusReason =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'UnsupportedMediaType'
  | 'MethodNotAllowed'
  | 'Expired'
  | 'Gone'
  | 'ServiceUnavailable'
  | 'InternalError';

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, unknown>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: StatusReason;
  details?: StatusDetails;
  code: number;
}

/** Thrown by request handling; the HTTP layer writes `status` as the response. */
export class KubeApiError extends Error {
  constructor(readonly status: StatusBody) {
    super(status.message);
  }
}

export function failure(code: number, reason: StatusReason, message: string, details?: StatusDetails): KubeApiError {
  const body: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) body.details = details;
  return new KubeApiError(body);
}

/** The `resource.group` qualifier the apiserver prints, e.g. `deployments.apps`. */
export function qualifiedResource(resource: string, group: string): string {
  return group ? `${resource}.${group}` : resource;
}

export function notFound(resource: string, group: string, name: string): KubeApiError {
  return failure(404, 'NotFound', `${qualifiedResource(resource, group)} "${name}" not found`, {
    name,
    ...(group ? { group } : {}),
    kind: resource,
  });
}

export function alreadyExists(resource: string, group: string, name: string): KubeApiError {
  return failure(409, 'AlreadyExists', `${qualifiedResource(resource, group)} "${name}" already exists`, {
    name,
    ...(group ? { group } : {}),
    kind: resource,
  });
}

export function modifiedConflict(resource: string, group: string, name: string): KubeApiError {
  return failure(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(resource, group)} "${name}": ` +
      'the object has been modified; please apply your changes to the latest version and try again',
    { name, ...(group ? { group } : {}), kind: resource },
  );
}

export interface FieldError {
  field: string;
  /** FieldValueRequired, FieldValueInvalid, FieldValueForbidden, FieldValueNotSupported, FieldValueDuplicate */
  type:
    | 'FieldValueRequired'
    | 'FieldValueInvalid'
    | 'FieldValueForbidden'
    | 'FieldValueNotSupported'
    | 'FieldValueDuplicate';
  detail: string;
  value?: unknown;
}

function describeFieldError(error: FieldError): string {
  switch (error.type) {
    case 'FieldValueRequired':
      return `${error.field}: Required value${error.detail ? `: ${error.detail}` : ''}`;
    case 'FieldValueForbidden':
      return `${error.field}: Forbidden: ${error.detail}`;
    case 'FieldValueDuplicate':
      return `${error.field}: Duplicate value: ${JSON.stringify(error.value)}`;
    case 'FieldValueNotSupported':
      return `${error.field}: Unsupported value: ${JSON.stringify(error.value)}${error.detail ? `: ${error.detail}` : ''}`;
    default:
      return `${error.field}: Invalid value: ${JSON.stringify(error.value)}: ${error.detail}`;
  }
}

/** 422 Invalid, e.g. `Deployment.apps "web" is invalid: spec.template.spec.containers[0].image: Required value`. */
export function invalid(kind: string, group: string, name: string, errors: FieldError[]): KubeApiError {
  const qualifiedKind = group ? `${kind}.${group}` : kind;
  const described = errors.map(describeFieldError);
  const summary = described.length === 1 ? described[0] : `[${described.join(', ')}]`;
  return failure(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${summary}`, {
    name,
    ...(group ? { group } : {}),
    kind,
    causes: errors.map((error, index) => ({
      reason: error.type,
      message: described[index].slice(error.field.length + 2),
      field: error.field,
    })),
  });
}

export function badRequest(message: string): KubeApiError {
  return failure(400, 'BadRequest', message);
}

export function successStatus(details: StatusDetails): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details };
}
