import '@testing-library/jest-dom';
import { configure } from '@testing-library/react';

// Material UI dialogs render slowly on a loaded 2-core CI machine: give each test and each
// `findBy`/`waitFor` room, so only a real failure fails.
jest.setTimeout(30_000);
configure({ asyncUtilTimeout: 5_000 });
