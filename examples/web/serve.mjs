// A static server for the example: the page from this folder and the SDK
// package from bindings/alcove-wasm/pkg (built by scripts/build-wasm.sh)
// under /pkg/. No dependencies.
//
//   node examples/web/serve.mjs [port]     (default 8080)
//
// Then open http://127.0.0.1:8080/?role=therapist and, in another browser
// profile, http://127.0.0.1:8080/?role=client, with the relay started as
//   alcove-server --allow-origin http://127.0.0.1:8080
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const pkg = join(here, "../../bindings/alcove-wasm/pkg");
const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".json": "application/json",
};

export function serve(port = 8080, host = "127.0.0.1") {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path.includes("..")) {
      res.writeHead(400).end();
      return;
    }
    const file = path.startsWith("/pkg/")
      ? join(pkg, path.slice(5))
      : join(here, path === "/" ? "index.html" : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": types[extname(file)] || "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] || 8080);
  await serve(port);
  console.log(`Alcove web example on http://127.0.0.1:${port}/?role=therapist`);
}
