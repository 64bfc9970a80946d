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
