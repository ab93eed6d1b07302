/**
 * Typed errors: one class per error code of contract v1, grouped by the code's first part.
 * Every error has `code` (the dotted wire code, or `undefined` when the failure is the
 * client's: no reply, a bad attestation), `message` and `retryable` (whether sending the same
 * request again may succeed).
 */

/** Any failure of a render call. */
export class MidnitError extends Error {
  readonly code: string | undefined;
  readonly retryable: boolean;
  constructor(message: string, code?: string, retryable = false) {
    super(code ? `${code}: ${message}` : message);
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
  }
}

/** No reply arrived within the timeout (after every attempt). Retryable. */
export class NoReply extends MidnitError {
  constructor(message: string) {
    super(message, undefined, true);
  }
}

/** The reply's attestation is missing, not signed by the pinned key, or does not match. */
export class AttestationError extends MidnitError {}

/** The reply is not a v1 reply. */
export class BadReply extends MidnitError {}

/** The worker answered the job with an error code. */
export class JobError extends MidnitError {
  /** The message without the code. */
  readonly detail: string;
  constructor(message: string, code: string, retryable: boolean) {
    super(message, code, retryable);
    this.detail = message;
  }
}
/** The request itself is wrong (`request.*`). */
export class RequestError extends JobError {}
/** An input is not a usable image (`input.*`). */
export class InputError extends JobError {}
/** The job exceeds a limit of the worker (`limits.*`). */
export class LimitsError extends JobError {}
/** The recipe is invalid (`recipe.*`). */
export class RecipeError extends JobError {}
/** The job ran out of time (`job.*`). */
export class JobStateError extends JobError {}

/** `request.malformed` */
export class RequestMalformed extends RequestError {}
/** `request.unsupported_version` */
export class RequestUnsupportedVersion extends RequestError {}
/** `request.too_large` */
export class RequestTooLarge extends RequestError {}
/** `request.invalid` */
export class RequestInvalid extends RequestError {}
/** `request.preset_required` */
export class RequestPresetRequired extends RequestError {}
/** `request.sealed_required` */
export class RequestSealedRequired extends RequestError {}
/** `request.reseal`: the worker does not hold the key of the epoch sealed to; fetch the key
 * directory again and send the request again (retryable). */
export class RequestReseal extends RequestError {}
/** `request.replayed` */
export class RequestReplayed extends RequestError {}
/** `input.empty` */
export class InputEmpty extends InputError {}
/** `input.too_large` */
export class InputTooLarge extends InputError {}
/** `input.unsupported_format` */
export class InputUnsupportedFormat extends InputError {}
/** `input.undecodable` */
export class InputUndecodable extends InputError {}
/** `limits.inputs` */
export class LimitsInputs extends LimitsError {}
/** `limits.pixels` */
export class LimitsPixels extends LimitsError {}
/** `limits.frames` */
export class LimitsFrames extends LimitsError {}
/** `limits.output` */
export class LimitsOutput extends LimitsError {}
/** `limits.memory` */
export class LimitsMemory extends LimitsError {}
/** `limits.complexity` */
export class LimitsComplexity extends LimitsError {}
/** `recipe.invalid` */
export class RecipeInvalid extends RecipeError {}
/** `job.expired` */
export class JobExpired extends JobStateError {}
/** `job.timeout` */
export class JobTimeout extends JobStateError {}
/** `internal` */
export class Internal extends JobError {}

type JobErrorClass = new (message: string, code: string, retryable: boolean) => JobError;

/** Every error code of contract v1 and its class. */
export const BY_CODE: Readonly<Record<string, JobErrorClass>> = {
  "request.malformed": RequestMalformed,
  "request.unsupported_version": RequestUnsupportedVersion,
  "request.too_large": RequestTooLarge,
  "request.invalid": RequestInvalid,
  "request.preset_required": RequestPresetRequired,
  "request.sealed_required": RequestSealedRequired,
  "request.reseal": RequestReseal,
  "request.replayed": RequestReplayed,
  "input.empty": InputEmpty,
  "input.too_large": InputTooLarge,
  "input.unsupported_format": InputUnsupportedFormat,
  "input.undecodable": InputUndecodable,
  "limits.inputs": LimitsInputs,
  "limits.pixels": LimitsPixels,
  "limits.frames": LimitsFrames,
  "limits.output": LimitsOutput,
  "limits.memory": LimitsMemory,
  "limits.complexity": LimitsComplexity,
  "recipe.invalid": RecipeInvalid,
  "job.expired": JobExpired,
  "job.timeout": JobTimeout,
  "internal": Internal,
};

const GROUPS: Readonly<Record<string, JobErrorClass>> = {
  request: RequestError,
  input: InputError,
  limits: LimitsError,
  recipe: RecipeError,
  job: JobStateError,
};

/**
 * The typed error for a reply's `error` map. A code newer than this package gets the class of
 * its group (or `JobError`), so `instanceof LimitsError` still catches it.
 */
export function fromReply(error: { code?: unknown; message?: unknown; retryable?: unknown }): JobError {
  const code = String(error.code ?? "");
  const cls = BY_CODE[code] ?? GROUPS[code.split(".")[0]] ?? JobError;
  return new cls(String(error.message ?? ""), code, error.retryable === true);
}
