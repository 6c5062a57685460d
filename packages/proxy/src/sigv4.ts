import type { IncomingMessage } from 'node:http'

/**
 * Re-signing of SigV4-signed provider requests (docs/sidecar.md#bedrock-and-sigv4). A gateway pointed at
 * the sidecar's provider-facing listener signs for the sidecar's host (LiteLLM signs for the endpoint it
 * is given); AWS checks the signature against its own host, so the request is signed again for the real
 * one, with the default AWS credential chain. The signing is @smithy/signature-v4's, loaded only when
 * re-signing is asked for.
 */
export interface Resign {
  /** Override the region read from the gateway's own signature. */
  region?: string
  /** Override the service read from the gateway's own signature (e.g. `bedrock`). */
  service?: string
}

export interface Resigner {
  /** True for a request signed with SigV4 (its body must then be read whole first). */
  wants(req: IncomingMessage): boolean
  /** Signs `req` again for `target` (its URL, with the path `path`), in place: its headers change. */
  sign(req: IncomingMessage, body: Buffer, target: string, path: string): Promise<void>
}

const SCOPE = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/

/** Headers a signature covers that the re-signing replaces, and hop-by-hop ones it leaves out. */
const UNSIGNED = new Set([
  'authorization',
  'x-amz-date',
  'x-amz-security-token',
  'x-amz-content-sha256',
  'connection',
  'transfer-encoding',
  'content-length',
  'host',
])

/** A request signed with SigV4 in its `authorization` header: its body is covered by the signature. */
export const signedWithSigV4 = (req: IncomingMessage): boolean =>
  String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256')

export async function resigner(options: Resign): Promise<Resigner> {
  let modules
  try {
    const [{ SignatureV4 }, { Sha256 }, { defaultProvider }] = await Promise.all([
      import('@smithy/signature-v4'),
      import('@aws-crypto/sha256-js'),
      import('@aws-sdk/credential-provider-node'),
    ])
    modules = { SignatureV4, Sha256, defaultProvider }
  } catch (error) {
    throw new Error(
      'usagewire proxy: re-signing needs @smithy/signature-v4, @aws-crypto/sha256-js and @aws-sdk/credential-provider-node ' +
        `installed beside it (${(error as Error).message})`,
    )
  }
  const credentials = modules.defaultProvider()
  return {
    wants: signedWithSigV4,
    async sign(req, body, target, path) {
      const scope = SCOPE.exec(String(req.headers.authorization ?? ''))
      const region = options.region ?? scope?.[1] ?? process.env.AWS_REGION ?? 'us-east-1'
      const service = options.service ?? scope?.[2] ?? 'bedrock'
      const url = new URL(path, target)
      const headers: Record<string, string> = { host: url.host }
      for (const [name, value] of Object.entries(req.headers)) {
        if (value === undefined || UNSIGNED.has(name)) continue
        headers[name] = Array.isArray(value) ? value.join(', ') : value
      }
      const query: Record<string, string> = {}
      for (const [name, value] of url.searchParams) query[name] = value
      const signer = new modules.SignatureV4({ credentials, region, service, sha256: modules.Sha256 })
      const signed = await signer.sign({
        method: req.method ?? 'POST',
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query,
        headers,
        body,
      })
      for (const name of ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']) {
        delete req.headers[name]
      }
      for (const [name, value] of Object.entries(signed.headers)) {
        if (name.toLowerCase() !== 'host') req.headers[name.toLowerCase()] = String(value)
      }
    },
  }
}
