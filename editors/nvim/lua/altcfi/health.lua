--- :checkhealth altcfi — what the plugin and the server see for the current buffer: the altcfi binary, the
--- workspace root (the kernel tree's root when the file is in one), the kernel build directories (in-tree, O=),
--- the compilation databases, and the attached client.
local M = {}

local health = vim.health or require('health')
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local warn = health.warn or health.report_warn
local info = health.info or health.report_info
local err = health.error or health.report_error

local uv = vim.uv or vim.loop

--- Build directories of the kernel tree at `root`, as the server looks for them: the tree itself after an
--- in-tree build, and every directory beside or inside it whose `source` link leads back to it.
local function build_dirs(root)
  local out = {}
  local real_root = uv.fs_realpath(root)
  if uv.fs_stat(root .. '/include/config/auto.conf') then
    table.insert(out, root)
  end
  for _, dir in ipairs({ root, vim.fs.dirname(root) }) do
    for name, kind in vim.fs.dir(dir) do
      local d = dir .. '/' .. name
      if kind == 'directory' and d ~= root and uv.fs_realpath(d .. '/source') == real_root
        and uv.fs_stat(d .. '/include/config/auto.conf') then
        table.insert(out, d)
      end
    end
  end
  return out
end

function M.check()
  local altcfi = require('altcfi')
  local cfg = altcfi.config
  start('altcfi: the server')
  local exe = cfg.cmd and cfg.cmd[1] or 'altcfi'
  if vim.fn.executable(exe) == 1 then
    local version = vim.fn.system({ exe, '--version' }):gsub('%s+$', '')
    ok(('%s (%s)'):format(version, vim.fn.exepath(exe)))
  else
    err(('%s is not executable: install altcfi (cargo install --path server/altcfi) or set cmd'):format(exe))
  end

  start('altcfi: the current buffer')
  local bufnr = vim.api.nvim_get_current_buf()
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == '' then
    info('no file in the current buffer')
    return
  end
  if not altcfi.attaches(bufnr) or not vim.tbl_contains(cfg.filetypes, vim.bo[bufnr].filetype) then
    info(('altcfi does not serve filetype %q'):format(vim.bo[bufnr].filetype))
  end
  local kernel = altcfi.kernel_root(name)
  local root = altcfi.root_dir(bufnr, cfg)
  if kernel then
    ok(('kernel tree: %s (workspace root)'):format(kernel))
    local dirs = build_dirs(kernel)
    if #dirs == 0 then
      warn('no build directory of this tree found', {
        'build in the tree (make), or out of tree with make O=DIR where DIR is beside or inside the tree',
        'or set buildDirs to the build directory',
      })
    end
    for _, d in ipairs(dirs) do
      local rel = uv.fs_stat(d .. '/compile_commands.json') and 'with compile_commands.json'
        or 'no compile_commands.json (make compile_commands.json there)'
      local release = io.open(d .. '/include/config/kernel.release', 'r')
      local version = release and release:read('*l') or '?'
      if release then
        release:close()
      end
      ok(('build directory %s: Linux %s, %s'):format(d, version, rel))
    end
  else
    info(('workspace root: %s (not in a kernel tree)'):format(root))
  end
  local clients = (vim.lsp.get_clients or vim.lsp.get_active_clients)({ bufnr = bufnr, name = 'altcfi' })
  if #clients == 0 then
    warn('no altcfi client is attached to this buffer')
  else
    ok(('client %d attached, root %s'):format(clients[1].id, clients[1].config.root_dir or '?'))
  end
end

return M
