// Preloaded with `node -r ./listen-loopback.js`: server-everything calls `app.listen(PORT)` with
// no host, which binds every interface. This forces 127.0.0.1 so a test never exposes it.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || typeof args[0] === "string") {
    const port = args[0];
    const rest = args.slice(1).filter((a) => typeof a === "function");
    return listen.call(this, port, "127.0.0.1", ...rest);
  }
  if (args[0] && typeof args[0] === "object") {
    args[0] = Object.assign({}, args[0], { host: "127.0.0.1" });
  }
  return listen.apply(this, args);
};
