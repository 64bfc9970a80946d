// HTTP as a test client of a Service needs it: one connection per request. A kept-alive connection
// carries on to wherever its first request went (kube-proxy decides per connection), so a pooled
// client (fetch's) would never see a replica added or withdrawn since, and one opened before
// kube-proxy had the Service's rules escapes through this machine's default route and stays there.
import http from 'node:http';

/** One GET on a connection of its own: the status and the body, trimmed. */
export function getOnce(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * A replica's command (/bin/sh -c) for a Service's tests: it serves its own hostname (its
 * Container's name) on 8080, so an answer says who served it, and /healthz while
 * /tmp/www/healthz exists. Asked to stop, it serves 3 s more, as a server behind a Kubernetes
 * Service should: its endpoint is withdrawn at the same time, and kube-proxy takes a moment to follow.
 */
export const serveName = [
  'mkdir -p /tmp/www && hostname > /tmp/www/index.html && touch /tmp/www/healthz',
  'httpd -f -p 8080 -h /tmp/www & trap "sleep 3; kill $!; exit 0" TERM INT; wait',
].join('\n');
