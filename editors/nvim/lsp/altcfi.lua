-- altcfi's configuration for Neovim 0.11+'s vim.lsp.config/vim.lsp.enable. With this plugin on the runtimepath:
--
--   vim.lsp.config('altcfi', { init_options = { framePointer = true } })   -- optional overrides
--   vim.lsp.enable('altcfi')
--
-- init_options is the server's initializationOptions contract; unset keys take the server's defaults.
return {
  cmd = { 'altcfi', 'lsp' },
  -- `cpp` for headers only (Neovim's filetype for `.h`): root_dir declines other C++ buffers.
  filetypes = { 'asm', 'vmasm', 'c', 'cpp' },
  -- Tried in order, each upward from the file, after the kernel tree's root (see lua/altcfi/init.lua).
  root_markers = { 'compile_commands.json', 'altcfi.toml', '.git', 'Kbuild' },
  root_dir = function(bufnr, on_dir)
    local altcfi = require('altcfi')
    if altcfi.attaches(bufnr) then
      on_dir(altcfi.root_dir(bufnr, { root_markers = { 'compile_commands.json', 'altcfi.toml', '.git', 'Kbuild' } }))
    end
  end,
  init_options = {
    objectGlobs = {},
    framePointer = false,
    kernel = 'auto',
    cpufeatures = vim.NIL,
    inlayHints = true,
    buildDirs = {},
    ehFrame = false,
    memoryBudgetMiB = 32,
    live = { enable = true, compilers = { 'gcc', 'cc', 'clang', 'as' }, timeoutMs = 10000 },
  },
  on_attach = function(client, bufnr)
    require('altcfi').on_attach(client, bufnr)
  end,
}
