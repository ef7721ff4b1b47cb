// eslint flat config: recommended JS + typescript-eslint rules with type information, over src/ and test/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
    { ignores: ['out/**', 'out-test/**', 'out-tsc/**', 'node_modules/**', 'eslint.config.mjs'] },
    js.configs.recommended,
    ...tseslint.configs.recommendedTypeChecked,
    {
        languageOptions: {
            parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
        },
        rules: {
            eqeqeq: 'error',
            curly: 'error',
            '@typescript-eslint/no-floating-promises': 'error',
        },
    },
    {
        // node:test's describe/it return promises that the runner itself awaits.
        files: ['test/**/*.ts'],
        rules: { '@typescript-eslint/no-floating-promises': 'off' },
    },
);
