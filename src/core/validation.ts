import type { z } from 'zod';

/**
 * The first problem zod found, as the field it concerns and what is wrong: every validation
 * error Cairn reports (config, stored documents, HTTP bodies) names one field on one line.
 */
export function firstIssue(error: z.ZodError): { path: string; message: string } {
  const issue = error.issues[0]!;
  return { path: issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.'), message: issue.message };
}
