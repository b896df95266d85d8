// Starts `nnspec lsp` (stdio) for .nn files; highlighting needs nothing from here.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("nnspec");
  const server = {
    command: config.get("server.command", "nnspec"),
    args: config.get("server.args", ["lsp"]),
    transport: TransportKind.stdio,
  };
  client = new LanguageClient("nnspec", "nnspec language server", server,
                              { documentSelector: [{ scheme: "file", language: "nnspec" }] });
  client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
