// Calls to FinHub's API. Every failure becomes an ApiError carrying the contract's `code`
// (or NETWORK when no answer came), so pages switch on codes, never on titles or statuses.

export class ApiError extends Error {
  constructor(code, status, problem = {}, retryAfter = null) {
    super(code);
    this.code = code;
    this.status = status;
    this.problem = problem;
    // Seconds, from the Retry-After header.
    this.retryAfter = retryAfter;
  }
}

export async function call(method, path, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError('NETWORK', 0);
  }
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') ?? '';
  const data = type.includes('json') ? await response.json().catch(() => null) : null;
  if (response.ok) return data;
  const retryAfter = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  const code = typeof data?.code === 'string'
    ? data.code
    : response.status >= 500 ? 'SERVICE_UNAVAILABLE' : 'UNKNOWN';
  throw new ApiError(code, response.status, data ?? {}, Number.isFinite(retryAfter) ? retryAfter : null);
}
