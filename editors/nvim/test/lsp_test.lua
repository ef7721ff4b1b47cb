-- Headless end-to-end test of the Neovim plugin against the real `altcfi lsp`.
--
-- Run by test/run.sh as:  nvim --headless --clean -u test/lsp_test.lua
-- Environment: ALTCFI_PLUGIN (this plugin's directory), ALTCFI_BIN (the altcfi binary), ALTCFI_WS (a workspace
-- holding examples/demo.S, its object and compile_commands.json), ALTCFI_MODE ('setup' for
-- require('altcfi').setup{}, 'enable' for vim.lsp.enable with lsp/altcfi.lua), ALTCFI_OUT (result file).
-- Writes "ok" or "FAIL: reason" lines to ALTCFI_OUT and exits non-zero on failure.

local plugin = assert(os.getenv('ALTCFI_PLUGIN'), 'ALTCFI_PLUGIN')
local bin = assert(os.getenv('ALTCFI_BIN'), 'ALTCFI_BIN')
local ws = assert(os.getenv('ALTCFI_WS'), 'ALTCFI_WS')
local mode = os.getenv('ALTCFI_MODE') or 'setup'
local out = assert(os.getenv('ALTCFI_OUT'), 'ALTCFI_OUT')
local timeout = tonumber(os.getenv('ALTCFI_TIMEOUT_MS') or '30000')

-- On the runtimepath before startup goes on, so that plugin/altcfi.lua is loaded the normal way.
vim.opt.runtimepath:prepend(plugin)
vim.opt.swapfile = false

local results = {}
local failed = false
local function check(name, ok, detail)
  local line = (ok and 'ok   ' or 'FAIL ') .. mode .. ': ' .. name .. (ok and '' or (': ' .. tostring(detail or '')))
  table.insert(results, line)
  io.stderr:write(line .. '\n')
  if not ok then
    failed = true
  end
  return ok
end

-- Context for the log (not checked): '# ' lines.
local function note(text)
  for l in (text .. '\n'):gmatch('(.-)\n') do
    table.insert(results, '# ' .. l)
  end
end

local function finish()
  local f = assert(io.open(out, 'w'))
  f:write(table.concat(results, '\n') .. '\n')
  f:close()
  vim.cmd(failed and 'cquit 1' or 'qall!')
end

local function body()
  check(':AltcfiTable is defined (plugin/altcfi.lua loaded)', vim.fn.exists(':AltcfiTable') == 2)
  check('Neovim is 0.11+', vim.fn.has('nvim-0.11') == 1, vim.inspect(vim.version()))

  if mode == 'enable' then
    vim.lsp.config('altcfi', { cmd = { bin, 'lsp' } })
    vim.lsp.enable('altcfi')
  else
    require('altcfi').setup({ cmd = { bin, 'lsp' }, inlayHints = true })
  end

  local src = ws .. '/examples/demo.S'
  vim.cmd('edit ' .. vim.fn.fnameescape(src))
  local buf = vim.api.nvim_get_current_buf()
  check('filetype is asm or vmasm', vim.bo[buf].filetype == 'asm' or vim.bo[buf].filetype == 'vmasm', vim.bo[buf].filetype)

  -- The ALTERNATIVE lines of the two functions (0-based).
  local bad_line, ok_line
  for i, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if l:match('^%s*ALTERNATIVE') then
      if l:find('push %%rcx') then
        bad_line = i - 1
      else
        ok_line = i - 1
      end
    end
  end
  assert(bad_line and ok_line, 'demo.S has no ALTERNATIVE lines')

  local attached = vim.wait(timeout, function()
    return require('altcfi').client(buf) ~= nil
  end, 50)
  if not check('client attached', attached) then
    return
  end
  local client = require('altcfi').client(buf)
  do
    check('root_dir is the workspace (compile_commands.json)', client.config.root_dir == ws, client.config.root_dir)
    local init = client.config.init_options or {}
    check('init_options follow the contract', init.kernel == 'auto' and init.framePointer == false
      and init.inlayHints == true and init.cpufeatures == vim.NIL and type(init.objectGlobs) == 'table'
      and type(init.buildDirs) == 'table', vim.inspect(init))
  end

  local function conflicts()
    return vim.tbl_filter(function(d)
      return d.code == 'alt-stack-conflict' and d.severity ~= vim.diagnostic.severity.HINT
    end, vim.diagnostic.get(buf))
  end
  local got = vim.wait(timeout, function()
    return #conflicts() > 0
  end, 50)
  if not check('diagnostics arrived', got, vim.inspect(vim.diagnostic.get(buf))) then
    return
  end
  -- Let any follow-up publish settle, then look at the final set.
  vim.wait(500)
  local diags = conflicts()
  check('exactly one alt-stack-conflict', #diags == 1, vim.inspect(vim.diagnostic.get(buf)))
  local d = diags[1]
  if d then
    note(('diagnostic at line %d: %s'):format(d.lnum + 1, d.message))
    check('on the ALTERNATIVE line of save_fl_bad', d.lnum == bad_line, ('line %d, want %d'):format(d.lnum, bad_line))
    check('source is altcfi', d.source == 'altcfi', d.source)
    check('message names the conflict', d.message:find('stack layout conflict', 1, true) ~= nil, d.message)
    local lsp = d.user_data and d.user_data.lsp or {}
    local href = lsp.codeDescription and lsp.codeDescription.href
    check('codeDescription links the shipped docs page',
      type(href) == 'string' and href:match('^file:///.*/docs/findings/alt%-stack%-conflict%.md$') ~= nil, href)
  end
  for _, x in ipairs(vim.diagnostic.get(buf, { lnum = ok_line })) do
    check('nothing above Hint on save_fl_ok', x.severity == vim.diagnostic.severity.HINT, vim.inspect(x))
  end

  -- Inlay hints are turned on by the plugin's on_attach (inlayHints = true), and the server sends some.
  if client.server_capabilities.inlayHintProvider then
    check('inlay hints enabled', vim.lsp.inlay_hint.is_enabled({ bufnr = buf }))
    local hints = vim.lsp.buf_request_sync(buf, 'textDocument/inlayHint', {
      textDocument = vim.lsp.util.make_text_document_params(buf),
      range = { start = { line = 0, character = 0 }, ['end'] = { line = vim.api.nvim_buf_line_count(buf), character = 0 } },
    }, timeout) or {}
    local on_bad = false
    for _, r in pairs(hints) do
      for _, h in ipairs(r.result or {}) do
        if h.position.line == bad_line then
          on_bad = true
        end
      end
    end
    check('an inlay hint on the save_fl_bad site', on_bad, vim.inspect(hints))
  end

  -- Hover on the site shows the per-offset CFI with the replacement's rsp+24.
  local hover = vim.lsp.buf_request_sync(buf, 'textDocument/hover', {
    textDocument = vim.lsp.util.make_text_document_params(buf),
    position = { line = bad_line, character = 2 },
  }, timeout) or {}
  local htext = ''
  for _, r in pairs(hover) do
    if r.result and r.result.contents then
      local c = r.result.contents
      htext = htext .. (type(c) == 'table' and (c.value or vim.inspect(c)) or tostring(c))
    end
  end
  check('hover shows the replacement CFA rsp+24', htext:find('rsp+24', 1, true) ~= nil, htext)

  -- :AltcfiTable with the cursor on the conflicting site.
  vim.api.nvim_win_set_cursor(0, { bad_line + 1, 2 })
  local before = vim.api.nvim_get_current_buf()
  vim.cmd('AltcfiTable')
  local shown = vim.wait(timeout, function()
    local b = vim.api.nvim_get_current_buf()
    return b ~= before and vim.bo[b].buftype == 'nofile'
  end, 50)
  check(':AltcfiTable opened a scratch buffer', shown)
  if shown then
    local tbuf = vim.api.nvim_get_current_buf()
    local text = table.concat(vim.api.nvim_buf_get_lines(tbuf, 0, -1, false), '\n')
    note(vim.api.nvim_buf_get_name(tbuf) .. '\n' .. text)
    check('table is read-only', vim.bo[tbuf].modifiable == false)
    check('table names save_fl_bad', (vim.api.nvim_buf_get_name(tbuf) .. '\n' .. text):find('save_fl_bad', 1, true) ~= nil,
      vim.api.nvim_buf_get_name(tbuf))
    check('table shows the original (pushf)', text:find('pushf', 1, true) ~= nil, text)
    check('table shows the replacement feature', text:find('XENPV', 1, true) ~= nil, text)
    check('table shows the replacement CFA rsp+24', text:find('rsp+24', 1, true) ~= nil, text)
    vim.cmd('close')
  end

  -- :AltcfiTable save_fl_ok by name, from the source buffer.
  vim.api.nvim_set_current_buf(buf)
  before = vim.api.nvim_get_current_buf()
  vim.cmd('AltcfiTable save_fl_ok')
  shown = vim.wait(timeout, function()
    return vim.api.nvim_get_current_buf() ~= before
  end, 50)
  if check(':AltcfiTable save_fl_ok', shown) then
    local t = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
    check('named table is save_fl_ok', (vim.api.nvim_buf_get_name(0) .. t):find('save_fl_ok', 1, true) ~= nil, t)
  end

  -- The code lens on the conflicting site runs altcfi.showCfiTable (registered by the plugin) with its params.
  vim.cmd('only')
  vim.api.nvim_set_current_buf(buf)
  local res = vim.lsp.buf_request_sync(buf, 'textDocument/codeLens',
    { textDocument = vim.lsp.util.make_text_document_params(buf) }, timeout) or {}
  local lens
  for _, r in pairs(res) do
    for _, l in ipairs(r.result or {}) do
      if l.range.start.line == bad_line and l.command and l.command.command == 'altcfi.showCfiTable' then
        lens = l
      end
    end
  end
  if check('code lens on the save_fl_bad site', lens ~= nil, vim.inspect(res)) then
    note('code lens: ' .. lens.command.title)
    check('code lens says conflict', lens.command.title:find('conflict', 1, true) ~= nil, lens.command.title)
    before = vim.api.nvim_get_current_buf()
    vim.lsp.commands['altcfi.showCfiTable'](lens.command, { bufnr = buf, client_id = client.id })
    shown = vim.wait(timeout, function()
      return vim.api.nvim_get_current_buf() ~= before
    end, 50)
    if check('code lens command opened the table', shown) then
      local t = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
      check('code lens table is save_fl_bad', t:find('save_fl_bad', 1, true) ~= nil, t)
    end
  end

  -- Live mode: edit the buffer without saving; the unsaved text is checked.
  vim.cmd('only')
  vim.api.nvim_set_current_buf(buf)
  local function conflicts()
    return vim.tbl_filter(function(d)
      return d.code == 'alt-stack-conflict' and d.severity ~= vim.diagnostic.severity.HINT
    end, vim.diagnostic.get(buf))
  end
  local original = vim.api.nvim_buf_get_lines(buf, bad_line, bad_line + 1, false)[1]
  local clean = original:gsub('"push %%rcx; push %%rcx; pop %%rax; pop %%rcx"', '"call xen_save_fl"')
  vim.api.nvim_buf_set_lines(buf, bad_line, bad_line + 1, false, { clean })
  check('typing a clean replacement (unsaved) clears the conflict',
    vim.wait(timeout, function() return #conflicts() == 0 end, 20), vim.inspect(vim.diagnostic.get(buf)))
  vim.cmd('silent undo')
  -- The text equals the file again: the build's object (with the conflict) is what counts.
  local back = vim.wait(timeout, function()
    local c = conflicts()
    return #c == 1 and c[1].lnum == bad_line
  end, 20)
  check('undo brings the conflict back on its line', back, vim.inspect(vim.diagnostic.get(buf)))

  -- The checked quick fix: apply it and the conflict goes.
  local diag = conflicts()[1]
  if check('a conflict diagnostic to fix', diag ~= nil) then
    local lsp_diag = diag.user_data and diag.user_data.lsp or {
      range = { start = { line = diag.lnum, character = diag.col }, ['end'] = { line = diag.end_lnum, character = diag.end_col } },
      code = diag.code, message = diag.message, source = diag.source,
    }
    local actions = vim.lsp.buf_request_sync(buf, 'textDocument/codeAction', {
      textDocument = vim.lsp.util.make_text_document_params(buf),
      range = lsp_diag.range,
      context = { diagnostics = { lsp_diag } },
    }, timeout) or {}
    local action
    for _, r in pairs(actions) do
      for _, a in ipairs(r.result or {}) do
        action = action or a
      end
    end
    if check('a quick fix is offered', action ~= nil, vim.inspect(actions)) then
      note('quick fix: ' .. action.title)
      check('its title says the site becomes clean', action.title:find('the site becomes clean', 1, true) ~= nil,
        action.title)
      vim.lsp.util.apply_workspace_edit(action.edit, 'utf-16')
      check('after the quick fix the conflict is gone',
        vim.wait(timeout, function() return #conflicts() == 0 end, 20), vim.inspect(vim.diagnostic.get(buf)))
    end
  end

  -- A strict-only conflict (examples/strict-only.S): a warning, and the hover names what differs and the verdict.
  local strict = ws .. '/examples/strict-only.S'
  vim.cmd('edit ' .. vim.fn.fnameescape(strict))
  local sbuf = vim.api.nvim_get_current_buf()
  local sline
  for i, l in ipairs(vim.api.nvim_buf_get_lines(sbuf, 0, -1, false)) do
    if l:match('^%s*ALTERNATIVE') then
      sline = i - 1
    end
  end
  local sdiag
  vim.wait(timeout, function()
    for _, d in ipairs(vim.diagnostic.get(sbuf)) do
      if d.code == 'alt-stack-conflict' and d.lnum == sline then
        sdiag = d
      end
    end
    return sdiag ~= nil
  end, 20)
  if check('strict-only.S: a conflict on its ALTERNATIVE line', sdiag ~= nil, vim.inspect(vim.diagnostic.get(sbuf))) then
    check('strict-only.S: a warning, not an error', sdiag.severity == vim.diagnostic.severity.WARN, sdiag.severity)
    check('strict-only.S: the message says strict-only', sdiag.message:find('strict-only', 1, true) ~= nil, sdiag.message)
    local sh = vim.lsp.buf_request_sync(sbuf, 'textDocument/hover', {
      textDocument = vim.lsp.util.make_text_document_params(sbuf),
      position = { line = sline, character = 2 },
    }, timeout) or {}
    local stext = ''
    for _, r in pairs(sh) do
      if r.result and r.result.contents then
        stext = stext .. (r.result.contents.value or '')
      end
    end
    check('strict-only.S: the hover names the field that differs and the verdict',
      stext:find('stack size 16 vs 24', 1, true) ~= nil and stext:find('strict-only', 1, true) ~= nil
        and stext:find('unwind ✓', 1, true) ~= nil and stext:find('✗', 1, true) == nil, stext)
  end
end

-- After startup (filetype detection and plugin/ scripts are on by then), like a user opening a file.
vim.api.nvim_create_autocmd('VimEnter', {
  once = true,
  callback = function()
    vim.schedule(function()
      local ok, err = xpcall(body, debug.traceback)
      if not ok then
        check('no Lua error', false, err)
      end
      finish()
    end)
  end,
})
