-- altcfi's user commands, for both entry points (require('altcfi').setup{} and vim.lsp.enable('altcfi')).
if vim.g.loaded_altcfi then
  return
end
vim.g.loaded_altcfi = true

vim.api.nvim_create_user_command('AltcfiTable', function(args)
  require('altcfi').table(args.args)
end, { nargs = '?', desc = 'altcfi: show the CFI table of the function at the cursor (or the named one)' })

vim.api.nvim_create_user_command('AltcfiRestart', function()
  require('altcfi').restart()
end, { desc = 'altcfi: restart the language server' })

vim.api.nvim_create_user_command('AltcfiCheckBuild', function()
  require('altcfi').check_build()
end, { desc = 'altcfi: check every object of the build; findings show on files that are not open too' })
