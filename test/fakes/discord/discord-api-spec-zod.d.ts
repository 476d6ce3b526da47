// discord-api-spec ships its zod export as plain JS (package.json "types" points at the .js file);
// the fake only needs `safeParse`, typed in validation.ts.
declare module 'discord-api-spec/zod';
