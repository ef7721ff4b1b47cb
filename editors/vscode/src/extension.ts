// The altcfi VS Code extension: starts `altcfi lsp` for `.S`/`.s` and C files, shows the per-instruction CFI table
// of a function in a read-only virtual document, and restarts the server on request or when a setting changes.
//
// Only the wiring to VS Code lives here; what settings mean (initializationOptions, which binary) is in config.ts.

import * as fs from 'fs';
import * as os from 'os';
import * as vscode from 'vscode';
import {
    LanguageClient,
    LanguageClientOptions,
    RequestType,
    ServerOptions,
} from 'vscode-languageclient/node';
import {
    affectsServer,
    initializationOptions,
    resolveServerPath,
    serverArgs,
    tableDocumentPath,
} from './config';

/** The URI scheme of the read-only CFI table documents. */
const TABLE_SCHEME = 'altcfi-table';

interface CfiTableParams {
    textDocument: { uri: string };
    position?: { line: number; character: number };
    function?: string;
}

interface CfiTableResult {
    title: string;
    content: string;
}

const cfiTableRequest = new RequestType<CfiTableParams, CfiTableResult | null, void>('altcfi/cfiTable');

interface StatusResult {
    text: string;
    details: string;
}

const statusRequest = new RequestType<{ textDocument: { uri: string } }, StatusResult | null, void>('altcfi/status');

/** The status bar item: the server's state for the active file (kernel tree, objects, rules); opens the log. */
let statusItem: vscode.StatusBarItem;

/** Files altcfi serves (the client's document selector, by name: assembly ids differ between extensions). */
function served(doc: vscode.TextDocument): boolean {
    return doc.uri.scheme === 'file' && (/\.(S|s|h|c)$/.test(doc.fileName) || doc.languageId === 'c');
}

/** Refreshes the status item for the active editor. */
async function updateStatus(): Promise<void> {
    const doc = vscode.window.activeTextEditor?.document;
    if (client === undefined || !client.isRunning()) {
        statusItem.text = '$(warning) altcfi: not running';
        statusItem.tooltip = 'The altcfi language server is not running. Click to open its log.';
        statusItem.show();
        return;
    }
    if (doc === undefined || !served(doc)) {
        statusItem.hide();
        return;
    }
    try {
        const status = await client.sendRequest(statusRequest, {
            textDocument: { uri: client.code2ProtocolConverter.asUri(doc.uri) },
        });
        if (status === null || status === undefined) {
            statusItem.hide();
            return;
        }
        statusItem.text = status.text;
        statusItem.tooltip = `${status.details}\n\nClick to open the altcfi log.`;
        statusItem.show();
    } catch {
        // A server without altcfi/status (older) or busy: keep what is shown.
    }
}

/** Holds the text of every table opened so far, keyed by URI; VS Code shows such documents read-only. */
class CfiTableProvider implements vscode.TextDocumentContentProvider {
    private readonly tables = new Map<string, string>();
    private readonly changed = new vscode.EventEmitter<vscode.Uri>();
    readonly onDidChange = this.changed.event;

    set(uri: vscode.Uri, content: string): void {
        this.tables.set(uri.toString(), content);
        this.changed.fire(uri);
    }

    provideTextDocumentContent(uri: vscode.Uri): string {
        return this.tables.get(uri.toString()) ?? '(no CFI table: run "altcfi: Show CFI table" again)';
    }

    dispose(): void {
        this.changed.dispose();
    }
}

let client: LanguageClient | undefined;
let output: vscode.OutputChannel;
/** Rebuilt objects and build databases, forwarded to the server as workspace/didChangeWatchedFiles. */
let watcher: vscode.FileSystemWatcher;

function createClient(context: vscode.ExtensionContext): LanguageClient {
    const config = vscode.workspace.getConfiguration('altcfi');
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const server = resolveServerPath(config.get('server.path'), {
        extensionPath: context.extensionPath,
        platform: process.platform,
        workspaceFolder: folder,
        home: os.homedir(),
        exists: (p) => fs.existsSync(p),
    });
    if (server.source === 'bundled') {
        // Execute bits can be lost when a .vsix is unpacked.
        try {
            fs.chmodSync(server.command, 0o755);
        } catch {
            // Read-only install: spawning will say what is wrong.
        }
    }
    const args = serverArgs(config.get('server.extraArgs'));
    const init = initializationOptions((key) => config.get(key), os.homedir());
    output.appendLine(`altcfi: server ${server.command} (${server.source}) ${args.join(' ')}`);
    output.appendLine(`altcfi: initializationOptions ${JSON.stringify(init)}`);

    // No `transport`: with TransportKind.stdio, vscode-languageclient appends `--stdio` to the arguments, which
    // `altcfi lsp` rejects; left unset, it still talks to the process over stdin/stdout (found by e2e/run.mjs).
    const serverOptions: ServerOptions = {
        command: server.command,
        args,
        options: folder !== undefined ? { cwd: folder } : undefined,
    };
    const clientOptions: LanguageClientOptions = {
        // By pattern, not by language id: assembly extensions disagree on ids (asm, gas, x86, …) and we must not
        // claim `.S` files from them.
        documentSelector: [
            { scheme: 'file', pattern: '**/*.{S,s}' },
            { scheme: 'file', language: 'c' },
            { scheme: 'file', pattern: '**/*.h' },
        ],
        initializationOptions: init,
        outputChannel: output,
        synchronize: { fileEvents: watcher },
    };
    return new LanguageClient('altcfi', 'altcfi', serverOptions, clientOptions);
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
    client = createClient(context);
    client.onDidChangeState(() => void updateStatus());
    try {
        await client.start();
        void updateStatus();
    } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        output.appendLine(`altcfi: the server did not start: ${msg}`);
        void updateStatus();
        void vscode.window
            .showErrorMessage(
                `altcfi: the language server did not start (${msg}). Set "altcfi.server.path" to the altcfi binary.`,
                'Open settings',
            )
            .then((choice) => {
                if (choice === 'Open settings') {
                    void vscode.commands.executeCommand('workbench.action.openSettings', 'altcfi.server');
                }
            });
    }
}

async function stopClient(): Promise<void> {
    const c = client;
    client = undefined;
    if (c !== undefined) {
        try {
            await c.dispose();
        } catch (e) {
            output.appendLine(`altcfi: stopping the server: ${e instanceof Error ? e.message : String(e)}`);
        }
    }
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
    output.appendLine('altcfi: restarting the server');
    await stopClient();
    await startClient(context);
}

/** A code lens argument or a command-palette call: the lens carries the `altcfi/cfiTable` parameters itself. */
function isTableParams(arg: unknown): arg is CfiTableParams {
    return typeof arg === 'object' && arg !== null && typeof (arg as CfiTableParams).textDocument?.uri === 'string';
}

async function showCfiTable(tables: CfiTableProvider, arg?: unknown): Promise<void> {
    if (client === undefined || !client.isRunning()) {
        void vscode.window.showErrorMessage('altcfi: the language server is not running.');
        return;
    }
    let params: CfiTableParams;
    if (isTableParams(arg)) {
        params = arg;
    } else {
        const editor = vscode.window.activeTextEditor;
        if (editor === undefined) {
            void vscode.window.showInformationMessage('altcfi: open a source file and put the cursor in a function.');
            return;
        }
        const pos = editor.selection.active;
        params = {
            textDocument: { uri: client.code2ProtocolConverter.asUri(editor.document.uri) },
            position: { line: pos.line, character: pos.character },
        };
    }
    let result: CfiTableResult | null;
    try {
        result = await client.sendRequest(cfiTableRequest, params);
    } catch (e) {
        void vscode.window.showErrorMessage(`altcfi: ${e instanceof Error ? e.message : String(e)}`);
        return;
    }
    if (result === null || result === undefined) {
        void vscode.window.showInformationMessage('altcfi: no function with code at the cursor.');
        return;
    }
    const uri = vscode.Uri.from({ scheme: TABLE_SCHEME, path: tableDocumentPath(result.title) });
    tables.set(uri, result.content);
    const doc = await vscode.workspace.openTextDocument(uri);
    // In the active editor group, as a preview tab: a table is looked at and dropped, and splitting the editor for
    // it halves the source the user is reading.
    await vscode.window.showTextDocument(doc, { preview: true, viewColumn: vscode.ViewColumn.Active });
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    output = vscode.window.createOutputChannel('altcfi');
    statusItem = vscode.window.createStatusBarItem('altcfi.status', vscode.StatusBarAlignment.Left, 0);
    statusItem.name = 'altcfi';
    statusItem.command = 'altcfi.showLog';
    context.subscriptions.push(statusItem);
    watcher = vscode.workspace.createFileSystemWatcher('**/{*.o,compile_commands.json,altcfi.toml}');
    context.subscriptions.push(output, watcher);
    const tables = new CfiTableProvider();
    context.subscriptions.push(
        tables,
        vscode.workspace.registerTextDocumentContentProvider(TABLE_SCHEME, tables),
        vscode.commands.registerCommand('altcfi.showCfiTable', (arg?: unknown) => showCfiTable(tables, arg)),
        vscode.commands.registerCommand('altcfi.restartServer', () => restart(context)),
        vscode.commands.registerCommand('altcfi.showLog', () => output.show(true)),
        vscode.window.onDidChangeActiveTextEditor(() => void updateStatus()),
        vscode.languages.onDidChangeDiagnostics((e) => {
            const active = vscode.window.activeTextEditor?.document.uri.toString();
            if (e.uris.some((u) => u.toString() === active)) {
                void updateStatus();
            }
        }),
        vscode.workspace.onDidChangeConfiguration((e) => {
            if (affectsServer((s) => e.affectsConfiguration(s))) {
                void restart(context);
            }
        }),
    );
    await startClient(context);
}

export async function deactivate(): Promise<void> {
    await stopClient();
}
