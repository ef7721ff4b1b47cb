--- altcfi for Neovim: starts `altcfi lsp` for assembly and C buffers, and shows a function's CFI table.
---
--- Two ways in:
---   require('altcfi').setup{ ... }            -- Neovim 0.8+ (vim.lsp.start on FileType)
---   vim.lsp.enable('altcfi')                  -- Neovim 0.11+ (lsp/altcfi.lua on the runtimepath)
--- Either way, :AltcfiTable [function] opens the per-instruction CFI table of the function under the cursor (or the
--- named one) in a scratch buffer. See :help altcfi.
local M = {}

--- Defaults. The keys under `init_options` are the server's `initializationOptions` contract.
M.defaults = {
  cmd = { 'altcfi', 'lsp' },
  -- `cpp` only for headers: Neovim gives `.h` files the cpp filetype (see M.attaches).
  filetypes = { 'asm', 'vmasm', 'c', 'cpp' },
  -- In priority order (vim.fs.root tries each marker upward before the next), after the kernel tree's root (see
  -- M.root_dir): a build database or altcfi's own config names the project better than a VCS root, and `Kbuild` is
  -- last because kernel subdirectories have one.
  root_markers = { 'compile_commands.json', 'altcfi.toml', '.git', 'Kbuild' },
  objectGlobs = {},
  framePointer = false,
  kernel = 'auto',
  cpufeatures = nil,
  inlayHints = true,
  buildDirs = {},
  ehFrame = false,
  memoryBudgetMiB = 32,
  live = { enable = true, compilers = { 'gcc', 'cc', 'clang', 'as' }, timeoutMs = 10000 },
}

local OPTION_KEYS = {
  'objectGlobs', 'framePointer', 'kernel', 'cpufeatures', 'inlayHints', 'buildDirs', 'ehFrame', 'memoryBudgetMiB', 'live',
}

--- The current configuration (defaults merged with the last setup{} call).
M.config = vim.deepcopy(M.defaults)

--- `initializationOptions` from a configuration table: every contract key present, `cpufeatures` as JSON null
--- when unset.
---@param cfg table
---@return table
function M.init_options(cfg)
  local opts = {}
  for _, k in ipairs(OPTION_KEYS) do
    opts[k] = cfg[k]
  end
  if opts.cpufeatures == nil or opts.cpufeatures == '' then
    opts.cpufeatures = vim.NIL
  else
    opts.cpufeatures = vim.fn.expand(opts.cpufeatures)
  end
  if opts.kernel ~= 'auto' and opts.kernel ~= '6.1' and opts.kernel ~= '6.12' then
    opts.kernel = 'auto'
  end
  opts.framePointer = opts.framePointer == true
  opts.inlayHints = opts.inlayHints ~= false
  -- Copies, so that the client's config does not alias ours (vim.json encodes an empty table as `[]`).
  opts.objectGlobs = vim.list_extend({}, opts.objectGlobs or {})
  opts.buildDirs = vim.list_extend({}, opts.buildDirs or {})
  return opts
end

--- on_attach for both entry points: turns on inlay hints when configured and the server offers them.
---@param client vim.lsp.Client
---@param bufnr integer
function M.on_attach(client, bufnr)
  local init = client.config.init_options or {}
  if init.inlayHints ~= false and vim.lsp.inlay_hint and client.server_capabilities.inlayHintProvider then
    pcall(vim.lsp.inlay_hint.enable, true, { bufnr = bufnr })
  end
end

--- The altcfi client attached to a buffer, if any.
---@param bufnr integer
---@return vim.lsp.Client|nil
function M.client(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  return get({ bufnr = bufnr, name = 'altcfi' })[1]
end

--- Checks the whole build (`workspace/executeCommand` `altcfi.checkBuild`): the findings of every object the
--- server finds in the build are published, files that are not open included; the summary is echoed.
function M.check_build()
  local client = M.client(vim.api.nvim_get_current_buf())
    or (vim.lsp.get_clients or vim.lsp.get_active_clients)({ name = 'altcfi' })[1]
  if not client then
    vim.notify('altcfi: no altcfi client is running', vim.log.levels.WARN)
    return
  end
  vim.notify('altcfi: checking the whole build…')
  client.request('workspace/executeCommand', { command = 'altcfi.checkBuild', arguments = {} }, function(err, result)
    if err then
      vim.notify('altcfi: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif result then
      vim.notify(result)
    end
  end)
end

--- Whether altcfi serves this buffer: every buffer of its filetypes, except C++ files other than headers.
---@param bufnr integer
---@return boolean
function M.attaches(bufnr)
  if vim.bo[bufnr].filetype ~= 'cpp' then
    return true
  end
  return vim.api.nvim_buf_get_name(bufnr):match('%.h$') ~= nil
end

--- The root of the Linux source tree `path` lies in: the nearest directory whose Makefile sets VERSION and
--- PATCHLEVEL, with MAINTAINERS beside it (arch/x86 has a Kbuild of its own, so that marker alone is wrong).
---@param path string
---@return string|nil
function M.kernel_root(path)
  for dir in vim.fs.parents(path) do
    if (vim.uv or vim.loop).fs_stat(dir .. '/MAINTAINERS') then
      local f = io.open(dir .. '/Makefile', 'r')
      if f then
        local head = f:read(1024) or ''
        f:close()
        if head:match('\nVERSION%s*=') or head:match('^VERSION%s*=') then
          if head:match('\nPATCHLEVEL%s*=') then
            return dir
          end
        end
      end
    end
  end
  return nil
end

--- The workspace root for a file: its kernel tree's root, else the nearest root marker, else its directory.
---@param bufnr integer
---@param cfg table
---@return string
function M.root_dir(bufnr, cfg)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local kernel = M.kernel_root(name)
  if kernel then
    return kernel
  end
  local root = vim.fs.root and vim.fs.root(bufnr, cfg.root_markers)
    or vim.fs.dirname(vim.fs.find(cfg.root_markers, { upward = true, path = vim.fs.dirname(name) })[1] or name)
  return root or vim.fs.dirname(name)
end

--- Starts (or reuses) the altcfi client for a buffer. Used by the FileType autocommand that setup{} installs.
---@param bufnr integer
function M.start(bufnr)
  local cfg = M.config
  if vim.bo[bufnr].buftype ~= '' then
    return
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == '' or not M.attaches(bufnr) then
    return
  end
  vim.lsp.start({
    name = 'altcfi',
    cmd = cfg.cmd,
    root_dir = M.root_dir(bufnr, cfg),
    init_options = M.init_options(cfg),
    on_attach = function(client, b)
      M.on_attach(client, b)
      if cfg.on_attach then
        cfg.on_attach(client, b)
      end
    end,
    capabilities = cfg.capabilities,
  }, { bufnr = bufnr })
end

local group = vim.api.nvim_create_augroup('altcfi', { clear = true })

--- Configures altcfi and starts it for matching buffers (including those already open).
---
--- Keys: cmd, filetypes, root_markers, on_attach, capabilities, and the server options objectGlobs,
--- framePointer, kernel ('auto'|'6.1'|'6.12'), cpufeatures (path), inlayHints, buildDirs, ehFrame, memoryBudgetMiB,
--- live ({ enable, compilers, timeoutMs }).
---@param opts table|nil
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  vim.api.nvim_clear_autocmds({ group = group })
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = M.config.filetypes,
    callback = function(ev)
      M.start(ev.buf)
    end,
  })
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(b) and vim.tbl_contains(M.config.filetypes, vim.bo[b].filetype) then
      M.start(b)
    end
  end
end

--- Sends a request with the API of the running Neovim (client:request in 0.11+, client.request before).
local function request(client, method, params, handler, bufnr)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- Shows a title and plain text in a read-only scratch buffer in a vertical split; `q` closes it.
---@param title string
---@param content string
---@return integer bufnr
function M.show_scratch(title, content)
  local buf = vim.api.nvim_create_buf(false, true)
  local lines = vim.split(content, '\n', { plain = true })
  if lines[#lines] == '' then
    table.remove(lines)
  end
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = false
  vim.bo[buf].filetype = 'altcfitable'
  pcall(vim.api.nvim_buf_set_name, buf, 'altcfi://' .. title)
  vim.cmd('vsplit')
  vim.api.nvim_win_set_buf(0, buf)
  vim.wo.wrap = false
  vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, silent = true })
  return buf
end

--- Sends `altcfi/cfiTable` with `params` and shows the result in a scratch buffer; `done(bufnr|nil, err|nil)`.
---@param client vim.lsp.Client
---@param bufnr integer
---@param params table
---@param done fun(buf: integer|nil, err: string|nil)
function M.request_table(client, bufnr, params, done)
  request(client, 'altcfi/cfiTable', params, function(err, result)
    if err then
      vim.notify('altcfi: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return done(nil, err.message or 'error')
    end
    if result == nil or result == vim.NIL then
      vim.notify('altcfi: no function with code at the cursor', vim.log.levels.INFO)
      return done(nil, 'no result')
    end
    done(M.show_scratch(result.title, result.content), nil)
  end, bufnr)
end

--- :AltcfiTable [function]: asks the server for the CFI table of the function at the cursor (or `fname`) and
--- shows it. `on_done(bufnr|nil, err|nil)` is called afterwards (for tests).
---@param fname string|nil
---@param on_done fun(buf: integer|nil, err: string|nil)|nil
function M.table(fname, on_done)
  local done = on_done or function() end
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    vim.notify('altcfi: no altcfi language server is attached to this buffer', vim.log.levels.WARN)
    return done(nil, 'no client')
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  if fname and fname ~= '' then
    params['function'] = fname
  end
  M.request_table(client, bufnr, params, done)
end

-- The server's code lenses on alternative sites run the client-side command `altcfi.showCfiTable`, whose one
-- argument is the `altcfi/cfiTable` parameters of the site's function (:lua vim.lsp.codelens.run()).
vim.lsp.commands['altcfi.showCfiTable'] = function(command, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local params = command.arguments and command.arguments[1]
  if client and type(params) == 'table' then
    M.request_table(client, ctx.bufnr, params, function() end)
  end
end

--- :AltcfiRestart: stops the altcfi clients and starts them again for the buffers they served.
function M.restart()
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  local bufs = {}
  for _, client in ipairs(get({ name = 'altcfi' })) do
    for b in pairs(client.attached_buffers or {}) do
      table.insert(bufs, b)
    end
    client:stop()
  end
  vim.defer_fn(function()
    for _, b in ipairs(bufs) do
      if vim.api.nvim_buf_is_loaded(b) then
        if vim.lsp.config and vim.lsp.is_enabled and vim.lsp.is_enabled('altcfi') then
          vim.api.nvim_exec_autocmds('FileType', { buffer = b })
        else
          M.start(b)
        end
      end
    end
  end, 500)
end

return M
