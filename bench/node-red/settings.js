// Node-RED settings for the comparison in bench/suite.sh: headless (no
// editor, no admin API), loopback only, memory context, warnings only.
// The suite sets BENCH_NR_PORT (HTTP) and BENCH_MQTT_PORT (the broker).
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: parseInt(process.env.BENCH_NR_PORT || "1880", 10),
  flowFile: "flows.json",
  httpAdminRoot: false,
  httpNodeRoot: "/",
  credentialSecret: false,
  contextStorage: { default: { module: "memory" } },
  logging: { console: { level: "warn", metrics: false, audit: false } },
  diagnostics: { enabled: false },
  telemetry: { enabled: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
  functionExternalModules: false,
};
