export declare const MIN_NODE: [number, number];
export declare const MIN_NODE_SOURCES: [number, number];
export declare function nodeTooOld(version: string, fromSources: boolean): string | null;
