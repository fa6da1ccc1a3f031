// An independent check of Patchwork's wire format, run by tests/federation/test_interop.py with
// the machine's Node. It shares no code with Patchwork: RFC 9421 signature bases are rebuilt by
// npm `http-message-signatures`, RFC 8785 bytes by npm `canonicalize`, and every Ed25519
// signature is checked (or made) with Node's own crypto.
//
// Reads one JSON object on stdin:
//   requests:  [{name, method, url, headers, body_b64, public_key, signature_base}]
//   documents: [{name, document, canonical_b64, keys: {key_id: public_key}}]
//   vectors:   [{name, input, expected_b64, ours_b64}]            (RFC 8785 test data)
//   numbers:   [{hex, expected}]                                  (IEEE 754 doubles)
//   sign:      [{name, method, url, headers, body_b64, seed, key_id, created, expires,
//                nonce, tag}]
// and writes one JSON object with a result for each, in the same order. Keys and signatures
// are base64url without padding, as on the wire.

import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import canonicalize from 'canonicalize';
import { httpbis } from 'http-message-signatures';
import { parseDictionary, serializeItem, serializeList, isInnerList } from 'structured-headers';

const TAG = 'patchwork-federation';
const REQUIRED_COMPONENTS = [
  '@method',
  '@target-uri',
  'content-digest',
  'patchwork-council',
  'patchwork-agreement',
  'patchwork-request-id',
  'patchwork-practitioner',
  'patchwork-purpose',
];
const REQUIRED_PARAMETERS = ['created', 'expires', 'nonce', 'keyid', 'tag', 'alg'];

const fromB64url = (text) => Buffer.from(text, 'base64url');
const publicKey = (raw) =>
  createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' });
const privateKey = (seed, raw) =>
  createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: seed, x: raw }, format: 'jwk' });

function header(headers, name) {
  const found = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
  return found ? found[1] : undefined;
}

function checkRequest(item) {
  const problems = [];
  const headers = item.headers;
  const body = fromB64url(item.body_b64);
  const inputs = parseDictionary(header(headers, 'signature-input') ?? '');
  const signatures = parseDictionary(header(headers, 'signature') ?? '');
  // RFC 9421 section 4.3: pick ours by its tag; other signatures are not ours to check.
  const ours = [...inputs.entries()].filter(
    ([, member]) => isInnerList(member) && member[1].get('tag') === TAG,
  );
  if (ours.length !== 1) {
    return { name: item.name, problems: [`${ours.length} signatures tagged ${TAG}`] };
  }
  const [label, input] = ours[0];
  const covered = input[0].map(([value]) => value);
  for (const component of REQUIRED_COMPONENTS) {
    if (!covered.includes(component)) problems.push(`${component} not covered`);
  }
  for (const parameter of REQUIRED_PARAMETERS) {
    if (!input[1].has(parameter)) problems.push(`no ${parameter} parameter`);
  }
  if (input[1].get('alg') !== 'ed25519') problems.push('alg is not ed25519');
  const lifetime = input[1].get('expires') - input[1].get('created');
  if (!(lifetime > 0 && lifetime <= 60)) problems.push(`lifetime ${lifetime}s`);

  // The signature base, rebuilt from the method, the URL (as WHATWG URL serialises it: no
  // default port) and the header fields, then the signature parameters as sent.
  const request = { method: item.method, url: new URL(item.url), headers };
  const lines = httpbis.createSignatureBase(
    { fields: input[0].map((component) => serializeItem(component)) },
    request,
  );
  lines.push(['"@signature-params"', [serializeList([input])]]);
  const base = httpbis.formatSignatureBase(lines);
  const baseMatches = item.signature_base === undefined ? null : base === item.signature_base;

  const signature = signatures.get(label);
  const signatureBytes = signature && signature[0] instanceof ArrayBuffer
    ? Buffer.from(signature[0]) : Buffer.alloc(0);
  const key = publicKey(item.public_key);
  const signatureValid = verify(null, Buffer.from(base), key, signatureBytes);

  const digests = parseDictionary(header(headers, 'content-digest') ?? '');
  const sha256 = digests.get('sha-256');
  const digestValid = Boolean(sha256 && sha256[0] instanceof ArrayBuffer)
    && Buffer.from(sha256[0]).equals(createHash('sha256').update(body).digest());

  return { name: item.name, label, base, baseMatches, signatureValid, digestValid, problems };
}

async function checkRequestWithLibrary(item) {
  // The library's own verification, selecting ours by tag and checking with Node's crypto.
  const key = publicKey(item.public_key);
  const request = { method: item.method, url: new URL(item.url), headers: item.headers };
  try {
    return await httpbis.verifyMessage(
      {
        keyLookup: async (parameters) => (parameters.tag === TAG
          ? { id: parameters.keyid, algs: ['ed25519'],
              verify: async (data, signature) => verify(null, data, key, signature) }
          : null),
        requiredFields: REQUIRED_COMPONENTS,
        requiredParams: REQUIRED_PARAMETERS,
        // The request may have been made minutes before the test reads it.
        tolerance: 3600,
      },
      request,
    );
  } catch (error) {
    return `error: ${error.message}`;
  }
}

function checkDocument(item) {
  const { signatures = {}, ...unsigned } = item.document;
  let bytes;
  try {
    bytes = Buffer.from(canonicalize(unsigned), 'utf8');
  } catch (error) {
    return { name: item.name, error: error.message };
  }
  const canonicalMatches = bytes.equals(fromB64url(item.canonical_b64));
  const verified = {};
  for (const [label, entry] of Object.entries(signatures)) {
    const raw = item.keys[entry.key_id];
    verified[label] = raw !== undefined
      && verify(null, bytes, publicKey(raw), fromB64url(entry.value));
  }
  return { name: item.name, canonicalMatches, verified };
}

function checkVector(item) {
  const ours = fromB64url(item.ours_b64);
  const expected = fromB64url(item.expected_b64);
  const theirs = Buffer.from(canonicalize(JSON.parse(item.input)), 'utf8');
  return {
    name: item.name,
    npmMatchesExpected: theirs.equals(expected),
    oursMatchesExpected: ours.equals(expected),
  };
}

function checkNumber(item) {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${item.hex}`));
  const value = view.getFloat64(0);
  let canonical;
  try {
    canonical = canonicalize(value);
  } catch (error) {
    canonical = null;
  }
  return { hex: item.hex, canonical, ecmascript: Number.isFinite(value) ? String(value) : null };
}

async function signRequest(item) {
  const body = fromB64url(item.body_b64);
  const raw = publicKeyOfSeed(item.seed);
  const key = privateKey(item.seed, raw);
  const digest = `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
  const message = {
    method: item.method,
    url: new URL(item.url),
    headers: { ...item.headers, 'Content-Digest': digest },
  };
  const signed = await httpbis.signMessage(
    {
      key: { id: item.key_id, alg: 'ed25519', sign: async (data) => sign(null, data, key) },
      name: item.label ?? 'sig',
      fields: REQUIRED_COMPONENTS,
      params: REQUIRED_PARAMETERS,
      paramValues: {
        created: new Date(item.created * 1000),
        expires: new Date(item.expires * 1000),
        nonce: item.nonce,
        tag: item.tag ?? TAG,
      },
    },
    message,
  );
  return { name: item.name, headers: signed.headers };
}

function publicKeyOfSeed(seed) {
  const key = createPrivateKey({
    key: Buffer.concat([
      // PKCS#8 prefix of an Ed25519 private key (RFC 8410), then the 32-byte seed.
      Buffer.from('302e020100300506032b657004220420', 'hex'),
      fromB64url(seed),
    ]),
    format: 'der',
    type: 'pkcs8',
  });
  return createPublicKey(key).export({ format: 'jwk' }).x;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const requests = [];
for (const item of input.requests ?? []) {
  requests.push({ ...checkRequest(item), library: await checkRequestWithLibrary(item) });
}
const signed = [];
for (const item of input.sign ?? []) signed.push(await signRequest(item));

process.stdout.write(JSON.stringify({
  requests,
  documents: (input.documents ?? []).map(checkDocument),
  vectors: (input.vectors ?? []).map(checkVector),
  numbers: (input.numbers ?? []).map(checkNumber),
  signed,
}));
